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

{{- define "dqw.podDeletionCost.serviceAccountName" -}}
{{- include "dqw.workerName" . -}}
{{- end -}}

{{/* A worker pod's service account and token mount; pass (dict "ctx" $ "pool" $pool). */}}
{{- define "dqw.podDeletionCost.podAccount" -}}
{{- if include "dqw.podDeletionCost.enabled" . -}}
serviceAccountName: {{ include "dqw.podDeletionCost.serviceAccountName" .ctx }}
# The token the worker patches its own pod with (bound to this pod, rotated by the kubelet).
automountServiceAccountToken: true
{{- else -}}
serviceAccountName: {{ include "dqw.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automountToken }}
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
