{{/* Pod deletion cost (worker.podDeletionCost): each worker keeps its pod's
controller.kubernetes.io/pod-deletion-cost equal to the workflows it runs, so that a scale-in
deletes idle workers first. It needs the Kubernetes API: the workers then run as a service
account of their own (the API's gets no right), with a Role that may patch pods and, unless
turned off, a ValidatingAdmissionPolicy that narrows it to the worker's own pod and that one
annotation (RBAC cannot name "the caller's pod"). */}}

{{/* Whether a pool keeps deletion costs: its own podDeletionCost.enabled, else the worker's;
pass (dict "ctx" $ "pool" $pool). */}}
{{- define "dqw.podDeletionCost.enabled" -}}
{{- $own := dict -}}
{{- range $p := .ctx.Values.workerPools -}}
{{- if eq $p.name $.pool.name -}}
{{- $own = $p.podDeletionCost | default dict -}}
{{- end -}}
{{- end -}}
{{- if ternary $own.enabled .ctx.Values.worker.podDeletionCost.enabled (hasKey $own "enabled") -}}true{{- end -}}
{{- end -}}

{{/* Whether any pool keeps deletion costs (then the service account, Role and policy exist). */}}
{{- define "dqw.podDeletionCost.any" -}}
{{- range $pool := (include "dqw.pools" . | fromJson).pools -}}
{{- include "dqw.podDeletionCost.enabled" (dict "ctx" $ "pool" $pool) -}}
{{- end -}}
{{- end -}}

{{/* The workers' account: made by the chart (<fullname>-worker unless named), or an existing
one the Role is bound to (serviceAccount.create=false). */}}
{{- define "dqw.podDeletionCost.serviceAccountName" -}}
{{- $account := .Values.worker.podDeletionCost.serviceAccount -}}
{{- if $account.create -}}
{{- $account.name | default (include "dqw.workerName" .) -}}
{{- else if $account.name -}}
{{- $account.name -}}
{{- else -}}
{{- fail "worker.podDeletionCost.serviceAccount.create=false needs worker.podDeletionCost.serviceAccount.name: the existing account the workers run as and the Role is bound to" -}}
{{- end -}}
{{- end -}}

{{/* A worker pod's service account; pass (dict "ctx" $ "pool" $pool). The token is not
mounted in every container: only the worker's gets it (dqw.podDeletionCost.volume). */}}
{{- define "dqw.podDeletionCost.podAccount" -}}
{{- if include "dqw.podDeletionCost.enabled" . -}}
serviceAccountName: {{ include "dqw.podDeletionCost.serviceAccountName" .ctx }}
automountServiceAccountToken: false
{{- else -}}
serviceAccountName: {{ include "dqw.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automountToken }}
{{- end -}}
{{- end -}}

{{/* The token the worker patches its own pod with (bound to this pod, rotated by the
kubelet), with the cluster's CA and the namespace, as the kubelet's own mount has them, for
the worker container alone; pass (dict "ctx" $ "pool" $pool). */}}
{{- define "dqw.podDeletionCost.volume" -}}
{{- if include "dqw.podDeletionCost.enabled" . -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3607}
      - configMap:
          name: kube-root-ca.crt
          items: [{key: ca.crt, path: ca.crt}]
      - downwardAPI:
          items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]
{{- end -}}
{{- end -}}
{{- define "dqw.podDeletionCost.mount" -}}
{{- if include "dqw.podDeletionCost.enabled" . -}}
- {name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
{{- end -}}
{{- end -}}

{{/* A worker container's environment for it; pass (dict "ctx" $ "pool" $pool). */}}
{{- define "dqw.podDeletionCost.env" -}}
{{- if include "dqw.podDeletionCost.enabled" . -}}
- name: WORKER_POD_DELETION_COST
  value: "true"
- name: WORKER_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: WORKER_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: WORKER_POD_DELETION_COST_INTERVAL_SECONDS
  value: {{ .ctx.Values.worker.podDeletionCost.intervalSeconds | quote }}
{{- end -}}
{{- end -}}

{{/* Fail unless the cluster serves ValidatingAdmissionPolicy v1 (Kubernetes 1.30+): discovery
says so on install, and `helm template` for --kube-version 1.30 or later; pass (dict
"kubeVersion" .Capabilities.KubeVersion.Version "served" (.Capabilities.APIVersions.Has
"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")). */}}
{{- define "dqw.podDeletionCost.requirePolicy" -}}
{{- if not (or .served (semverCompare ">=1.30.0-0" .kubeVersion)) -}}
{{- fail (printf "worker.podDeletionCost.admissionPolicy needs ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30+), which this cluster (%s) does not serve: without it the workers' Role may patch any pod of the namespace. Upgrade the cluster, or set worker.podDeletionCost.admissionPolicy=false to accept that" .kubeVersion) -}}
{{- end -}}
{{- end -}}
