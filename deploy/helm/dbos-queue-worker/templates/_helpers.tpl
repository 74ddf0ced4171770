{{/* Standard names and labels. */}}
{{- define "dqw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dqw.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dqw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; pass (dict "ctx" $ "component" "api"). */}}
{{- define "dqw.labels" -}}
helm.sh/chart: {{ include "dqw.chart" .ctx }}
{{ include "dqw.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{/* The component is in the selector from the first release: selectors can't change later. */}}
{{- define "dqw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dqw.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dqw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dqw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dqw.image" -}}
{{- printf "%s-%s:%s" .ctx.Values.image.repository .component (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end -}}

{{- define "dqw.databaseSecretName" -}}
{{- default (printf "%s-database" (include "dqw.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "dqw.workerName" -}}
{{- printf "%s-worker" (include "dqw.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The HPA that scales the workers: ours, or the one KEDA makes for its ScaledObject. */}}
{{- define "dqw.hpaName" -}}
{{- if .Values.keda.enabled -}}
{{- printf "keda-hpa-%s" (include "dqw.workerName" .) -}}
{{- else -}}
{{- include "dqw.workerName" . -}}
{{- end -}}
{{- end -}}

{{/* The database URL, always from a Secret; pass (dict "name" ... "key" ...). */}}
{{- define "dqw.databaseEnv" -}}
- name: DBOS_SYSTEM_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end -}}

{{/* Environment every container reads. */}}
{{- define "dqw.settingsEnv" -}}
- name: DBOS__APPVERSION
  value: {{ .Values.applicationVersion | quote }}
- name: EXECUTOR_GRACE_SECONDS
  value: {{ .Values.executorGraceSeconds | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* Worker settings the migration reads too: it registers the queue with the workers'
concurrency and polling interval (a fleet scaled to zero has no worker to register it, and its
load is unknown until the queue is), and checks the grace against the heartbeat interval as a
worker does. */}}
{{- define "dqw.workerSettingsEnv" -}}
- name: WORKER_CONCURRENCY
  value: {{ .Values.worker.concurrency | quote }}
- name: WORKER_POLLING_INTERVAL_SECONDS
  value: {{ .Values.worker.pollingIntervalSeconds | quote }}
- name: HEARTBEAT_INTERVAL_SECONDS
  value: {{ .Values.worker.heartbeatIntervalSeconds | quote }}
{{- end -}}

{{/* Environment both services read. */}}
{{- define "dqw.commonEnv" -}}
{{ include "dqw.databaseEnv" (dict "name" (include "dqw.databaseSecretName" .) "key" .Values.database.secretKey) }}
{{ include "dqw.settingsEnv" . }}
{{- end -}}

{{/* Cross-field checks: a wrong combination fails the install with the key to fix. */}}
{{- define "dqw.validate" -}}
{{- if and .Values.keda.enabled (eq (int .Values.keda.minReplicaCount) 0) (not .Values.database.migration.enabled) -}}
{{- fail "keda.minReplicaCount 0 needs database.migration.enabled: the migration registers the queue, and without a worker nothing else does, so KEDA would never read a load to wake the fleet" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled -}}
{{- fail "autoscaling.enabled and keda.enabled are both true: choose one scaler for the workers" -}}
{{- end -}}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) (int .Values.worker.drainTimeoutSeconds) -}}
{{- fail "worker.terminationGracePeriodSeconds must be greater than worker.drainTimeoutSeconds, or Kubernetes kills workers mid-drain" -}}
{{- end -}}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) -}}
{{- fail "set database.existingSecret (recommended) or database.url: the services need the system database" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas is greater than autoscaling.maxReplicas" -}}
{{- end -}}
{{- if lt (float64 .Values.executorGraceSeconds) (addf 2 (mulf 4 (float64 .Values.worker.heartbeatIntervalSeconds))) -}}
{{- fail "executorGraceSeconds must be at least four times worker.heartbeatIntervalSeconds plus 2 (workers refuse to start otherwise)" -}}
{{- end -}}
{{- end -}}

{{/* Topology spread across nodes by default, best effort. */}}
{{- define "dqw.topologySpread" -}}
{{- if .constraints -}}
{{ toYaml .constraints }}
{{- else -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "dqw.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end -}}
{{- end -}}
