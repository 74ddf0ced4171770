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

{{/* An object's name: the full name and a suffix, the full name shortened so that the whole
stays within 63 characters and the suffix whole (two objects never share a name); pass
(dict "ctx" $ "suffix" "api"). */}}
{{- define "dqw.suffixed" -}}
{{- $prefix := include "dqw.fullname" .ctx | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix .suffix -}}
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
{{- $tag := .ctx.Values.image.tag | toString -}}
{{- printf "%s-%s:%s" .ctx.Values.image.repository .component (ternary .ctx.Chart.AppVersion $tag (eq $tag "")) -}}
{{- end -}}

{{- define "dqw.databaseSecretName" -}}
{{- default (include "dqw.suffixed" (dict "ctx" . "suffix" "database")) .Values.database.existingSecret -}}
{{- end -}}

{{- define "dqw.workerName" -}}
{{- include "dqw.suffixed" (dict "ctx" . "suffix" "worker") -}}
{{- end -}}

{{/* The HPA that scales a pool: ours, or the one KEDA makes for its ScaledObject; pass
(dict "ctx" $ "pool" $pool). */}}
{{- define "dqw.hpaName" -}}
{{- if and .ctx.Values.keda.enabled (not .ctx.Values.keda.transferHpaOwnership) -}}
{{- printf "keda-hpa-%s" .pool.fullname -}}
{{- else -}}
{{- .pool.fullname -}}
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

{{/* Environment every container reads; pass (dict "ctx" $ "version" ...), the version the
container pins or runs. */}}
{{- define "dqw.settingsEnv" -}}
- name: DBOS__APPVERSION
  value: {{ .version | toString | quote }}
- name: EXECUTOR_GRACE_SECONDS
  value: {{ .ctx.Values.executorGraceSeconds | quote }}
- name: LOG_LEVEL
  value: {{ .ctx.Values.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .ctx.Values.logFormat | quote }}
{{- end -}}

{{/* Worker settings the migration reads too: it checks the grace against the heartbeat
interval as a worker does, and keeps the audit log as long as the retention says. */}}
{{- define "dqw.workerSettingsEnv" -}}
- name: HEARTBEAT_INTERVAL_SECONDS
  value: {{ .Values.worker.heartbeatIntervalSeconds | quote }}
# The migration sets the youngest audit rows the retention may delete from it.
- name: RETENTION_SECONDS
  value: {{ .Values.worker.retention.seconds | quote }}
{{- end -}}

{{/* The registry of workflow types and queues the release runs (as a dict): `registry`, or
the images' built-in one (files/registry.json, a copy kept identical by a test), with each
pool's concurrency and polling interval written into its queues, so the migration registers
every queue as the pool serving it will. */}}
{{- define "dqw.registry" -}}
{{- include "dqw.sizedRegistry" (dict "ctx" . "declared" (include "dqw.declaredRegistry" . | fromJson)) -}}
{{- end -}}

{{/* A registry (pass (dict "ctx" $ "declared" $registry)) with each pool's concurrency and
polling interval written into those of its queues that the registry declares. */}}
{{- define "dqw.sizedRegistry" -}}
{{- $registry := deepCopy .declared -}}
{{- range $pool := (include "dqw.pools" .ctx | fromJson).pools -}}
{{- range $queue := $pool.queues -}}
{{- if hasKey ($registry.queues | default dict) $queue -}}
{{- $spec := index $registry.queues $queue -}}
{{- if not (kindIs "invalid" $pool.concurrency) -}}
{{- $_ := set $spec "worker_concurrency" (int $pool.concurrency) -}}
{{- end -}}
{{- if not (kindIs "invalid" $pool.pollingIntervalSeconds) -}}
{{- $_ := set $spec "polling_interval_seconds" (float64 $pool.pollingIntervalSeconds) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $registry -}}
{{- end -}}

{{- define "dqw.declaredRegistry" -}}
{{- if .Values.registry -}}
{{- toJson .Values.registry -}}
{{- else -}}
{{- .Files.Get "files/registry.json" | fromJson | toJson -}}
{{- end -}}
{{- end -}}

{{- define "dqw.registryPath" -}}/etc/dbos-queue-worker/registry.json{{- end -}}

{{/* Where every container finds the registry: the ConfigMap, mounted read-only. */}}
{{- define "dqw.registryEnv" -}}
- name: WORKFLOW_REGISTRY
  value: {{ include "dqw.registryPath" . | quote }}
{{- end -}}
{{- define "dqw.registryMount" -}}
- {name: registry, mountPath: /etc/dbos-queue-worker, readOnly: true}
{{- end -}}
{{/* Pass (dict "ctx" $ "suffix" "registry") (or "registry-migrate" for the Job). */}}
{{- define "dqw.registryVolume" -}}
- name: registry
  configMap:
    name: {{ include "dqw.suffixed" . }}
{{- end -}}
{{- define "dqw.registryChecksum" -}}
checksum/registry: {{ include "dqw.registry" . | sha256sum | trunc 16 }}
{{- end -}}

{{/* The worker pools, resolved (as JSON: {"pools": [...]}): each with its queues (a pool
without queues takes those no other pool names), its Deployment's name and component, and
the worker.*, autoscaling.* and keda.* settings its own keys replace. */}}
{{- define "dqw.pools" -}}
{{- $registry := include "dqw.declaredRegistry" . | fromJson -}}
{{- $named := list -}}
{{- range $p := .Values.workerPools -}}
{{- range $q := ($p.queues | default list) -}}
{{- $named = append $named $q -}}
{{- end -}}
{{- end -}}
{{- $rest := list -}}
{{- range $q := keys ($registry.queues | default dict) | sortAlpha -}}
{{- if not (has $q $named) -}}
{{- $rest = append $rest $q -}}
{{- end -}}
{{- end -}}
{{- $settings := list "replicas" "concurrency" "pollingIntervalSeconds" "drainTimeoutSeconds" "terminationGracePeriodSeconds" "resources" "extraEnv" "podAnnotations" "podLabels" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" "priorityClassName" "initContainers" "extraContainers" "readinessProbe" "livenessProbe" -}}
{{- $pools := list -}}
{{- range $p := .Values.workerPools -}}
{{- $pool := dict "name" $p.name "queues" ($p.queues | default $rest) "open" (not $p.queues) "ownImage" (not (not $p.image)) "image" ($p.image | default (include "dqw.image" (dict "ctx" $ "component" "worker"))) -}}
{{- range $key := $settings -}}
{{- $_ := set $pool $key (ternary (index $p $key) (index $.Values.worker $key) (hasKey $p $key)) -}}
{{- end -}}
{{- /* A pool's own keys replace the globals one by one (merge would take a 0 for unset). */ -}}
{{- $overlays := dict "autoscaling" (list "minReplicas" "maxReplicas" "targetLoadPerWorker" "behavior") "keda" (list "minReplicaCount" "maxReplicaCount" "fallbackReplicas" "cooldownPeriod" "pollingInterval") "pdb" (list "enabled" "maxUnavailable") -}}
{{- range $section, $keys := $overlays -}}
{{- $global := ternary $.Values.worker.pdb (index $.Values $section) (eq $section "pdb") -}}
{{- $own := index $p $section | default dict -}}
{{- $merged := dict -}}
{{- range $key := $keys -}}
{{- $_ := set $merged $key (ternary (index $own $key) (index $global $key) (hasKey $own $key)) -}}
{{- end -}}
{{- $_ := set $pool $section $merged -}}
{{- end -}}
{{- if eq $p.name "default" -}}
{{- $_ := set $pool "component" "worker" -}}
{{- $_ := set $pool "fullname" (include "dqw.workerName" $) -}}
{{- else -}}
{{- $_ := set $pool "component" (printf "worker-%s" $p.name) -}}
{{- /* The full name gives way, never "worker-<pool>": two pools never share a name. */ -}}
{{- $_ := set $pool "fullname" (include "dqw.suffixed" (dict "ctx" $ "suffix" (printf "worker-%s" $p.name))) -}}
{{- end -}}
{{- $pools = append $pools $pool -}}
{{- end -}}
{{- toJson (dict "pools" $pools "rest" $rest) -}}
{{- end -}}

{{/* The worker fleets (as JSON: {"fleets": [...]}): every pool at applicationVersion, under the
pool's own names, and every pool again for each of previousVersions (earlier versions that
still have work: DBOS runs a workflow only on workers of its version), named
<pool's name>-v<version>. Each fleet is a pool (see dqw.pools) with its version, its image,
its registry's ConfigMap and checksum, and, for an earlier version, only the pool's queues
that version's registry declares (a pool with none has no fleet of that version). An earlier
version's fleet may shrink to none (KEDA) or one (the HPA's least) once its work is done. */}}
{{- define "dqw.fleets" -}}
{{- $pools := (include "dqw.pools" . | fromJson).pools -}}
{{- $fleets := list -}}
{{- /* What would leave an earlier version's work without a worker (dqw.validate fails). */ -}}
{{- $problems := list -}}
{{- $open := false -}}
{{- range $pool := $pools -}}
{{- if $pool.open -}}
{{- $open = true -}}
{{- end -}}
{{- end -}}
{{- $current := include "dqw.registry" . -}}
{{- range $pool := $pools -}}
{{- $fleet := deepCopy $pool -}}
{{- $_ := set $fleet "version" (toString $.Values.applicationVersion) -}}
{{- $_ := set $fleet "current" true -}}
{{- $_ := set $fleet "registryConfigMap" (include "dqw.suffixed" (dict "ctx" $ "suffix" "registry")) -}}
{{- $_ := set $fleet "registryChecksum" ($current | sha256sum | trunc 16) -}}
{{- $fleets = append $fleets $fleet -}}
{{- end -}}
{{- range $previous := .Values.previousVersions -}}
{{- $version := toString $previous.version -}}
{{- $slug := include "dqw.versionSlug" $version -}}
{{- $registry := $current -}}
{{- $configMap := include "dqw.suffixed" (dict "ctx" $ "suffix" "registry") -}}
{{- if $previous.registry -}}
{{- $registry = include "dqw.sizedRegistry" (dict "ctx" $ "declared" $previous.registry) -}}
{{- $configMap = include "dqw.suffixed" (dict "ctx" $ "suffix" (printf "registry-v%s" $slug)) -}}
{{- end -}}
{{- $declared := keys (($registry | fromJson).queues | default dict) | sortAlpha -}}
{{- /* Queues of that version that no pool names now (dropped or renamed since) go to the pool
that takes the queues no other names; dqw.validate fails when there is none. */ -}}
{{- $named := list -}}
{{- range $pool := $pools -}}
{{- $named = concat $named $pool.queues -}}
{{- end -}}
{{- $leftover := list -}}
{{- range $q := $declared -}}
{{- if not (has $q $named) -}}
{{- $leftover = append $leftover $q -}}
{{- end -}}
{{- end -}}
{{- if and $leftover (not $open) -}}
{{- $problems = append $problems (printf "previousVersions %q: its registry's queue(s) %s are served by no pool now, and its work there would wait forever: leave one pool's queues empty (it then serves them for that version too)" $version (join ", " $leftover)) -}}
{{- end -}}
{{- range $pool := $pools -}}
{{- $queues := list -}}
{{- range $q := $pool.queues -}}
{{- if has $q $declared -}}
{{- $queues = append $queues $q -}}
{{- end -}}
{{- end -}}
{{- if $pool.open -}}
{{- $queues = concat $queues $leftover -}}
{{- end -}}
{{- $image := printf "%s-worker:%s" ($previous.image.repository | default $.Values.image.repository) (toString $previous.image.tag) -}}
{{- if $pool.ownImage -}}
{{- $image = index ($previous.images | default dict) $pool.name | default "" -}}
{{- if and $queues (not $image) -}}
{{- $problems = append $problems (printf "previousVersions %q: pool %q runs an image of its own (workerPools[].image): name that version's in previousVersions[].images.%s" $version $pool.name $pool.name) -}}
{{- end -}}
{{- end -}}
{{- $component := printf "%s-v%s" $pool.component $slug -}}
{{- if and $queues (gt (len $component) 52) -}}
{{- $problems = append $problems (printf "previousVersions %q: the name %s of pool %q's workers of that version is longer than 52 characters (object names and labels must fit 63): shorten the pool's name or the version" $version $component $pool.name) -}}
{{- end -}}
{{- if $queues -}}
{{- $fleet := deepCopy $pool -}}
{{- $_ := set $fleet "queues" $queues -}}
{{- $_ := set $fleet "version" $version -}}
{{- $_ := set $fleet "current" false -}}
{{- $_ := set $fleet "image" $image -}}
{{- $_ := set $fleet "component" $component -}}
{{- $_ := set $fleet "fullname" (include "dqw.suffixed" (dict "ctx" $ "suffix" $component)) -}}
{{- $_ := set $fleet "registryConfigMap" $configMap -}}
{{- $_ := set $fleet "registryChecksum" ($registry | sha256sum | trunc 16) -}}
{{- $_ := set $fleet.autoscaling "minReplicas" 1 -}}
{{- $_ := set $fleet.keda "minReplicaCount" 0 -}}
{{- /* When the load can't be read, hold (a drained fleet at zero stays there). */ -}}
{{- $_ := set $fleet.keda "fallbackReplicas" 0 -}}
{{- if $previous.maxReplicas -}}
{{- $_ := set $fleet.autoscaling "maxReplicas" (int $previous.maxReplicas) -}}
{{- $_ := set $fleet.keda "maxReplicaCount" (int $previous.maxReplicas) -}}
{{- end -}}
{{- $fleets = append $fleets $fleet -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "fleets" $fleets "problems" $problems) -}}
{{- end -}}

{{/* A version as a part of object names: lower case, "." and "_" as "-". */}}
{{- define "dqw.versionSlug" -}}
{{- . | lower | replace "." "-" | replace "_" "-" -}}
{{- end -}}

{{/* The most connections the release may hold at once (see the README's connection budget):
each worker DBOS's pool + 4 (listener, heartbeats, housekeeping), each API process its pool,
and the migration Job's one; every fleet at its maximum plus a rolling update's surge (25%,
rounded up, of its maximum: the new pods start before the old ones stop). */}}
{{- define "dqw.maxConnections" -}}
{{- $total := 1 -}}
{{- range $fleet := (include "dqw.fleets" . | fromJson).fleets -}}
{{- $most := int (include "dqw.poolMaxReplicas" (dict "ctx" $ "pool" $fleet)) -}}
{{- $surge := include "dqw.surge" (dict "replicas" $most "maxSurge" $.Values.worker.rollingUpdate.maxSurge) -}}
{{- $total = add $total (mul (add $most $surge) (add $.Values.worker.dbPoolSize 4)) -}}
{{- end -}}
{{- $api := int .Values.api.replicas -}}
{{- $surge := include "dqw.surge" (dict "replicas" $api "maxSurge" "25%") -}}
{{- add $total (mul (add $api $surge) .Values.api.processes .Values.api.dbPoolSize) -}}
{{- end -}}

{{/* The pods a rolling update adds above the replicas: maxSurge, a number or a percentage of
the replicas rounded up, as the Deployment controller computes it; pass (dict "replicas" n
"maxSurge" ...). */}}
{{- define "dqw.surge" -}}
{{- $surge := toString .maxSurge -}}
{{- if hasSuffix "%" $surge -}}
{{- div (add (mul (int .replicas) (int (trimSuffix "%" $surge))) 99) 100 -}}
{{- else -}}
{{- int $surge -}}
{{- end -}}
{{- end -}}

{{- define "dqw.poolMaxReplicas" -}}
{{- if .ctx.Values.autoscaling.enabled -}}
{{- int .pool.autoscaling.maxReplicas -}}
{{- else if .ctx.Values.keda.enabled -}}
{{- int .pool.keda.maxReplicaCount -}}
{{- else -}}
{{- /* Scaled by hand: its replicas, 1 (Kubernetes' default) when unset. */ -}}
{{- ternary 1 .pool.replicas (kindIs "invalid" .pool.replicas) | int -}}
{{- end -}}
{{- end -}}

{{/* Environment both services read; pass (dict "ctx" $ "version" ...). */}}
{{- define "dqw.commonEnv" -}}
{{ include "dqw.databaseEnv" (dict "name" (include "dqw.databaseSecretName" .ctx) "key" .ctx.Values.database.secretKey) }}
{{ include "dqw.settingsEnv" . }}
{{- with .ctx.Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplingRatio | toString | quote }}
{{- if .headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .headersSecret.name | quote }}
      key: {{ .headersSecret.key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Cross-field checks: a wrong combination fails the install with the key to fix. */}}
{{- define "dqw.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled -}}
{{- fail "autoscaling.enabled and keda.enabled are both true: choose one scaler for the workers" -}}
{{- end -}}
{{- $resolved := include "dqw.pools" . | fromJson -}}
{{- $registry := include "dqw.declaredRegistry" . | fromJson -}}
{{- if not (and (kindIs "map" $registry.queues) $registry.queues (kindIs "map" $registry.workflows) $registry.default_workflow) -}}
{{- fail "registry must declare default_workflow, queues and workflows (the format of services/contract/registry.json), or be empty for the images' built-in one" -}}
{{- end -}}
{{- $declared := keys $registry.queues | sortAlpha -}}
{{- $seen := dict -}}
{{- $open := list -}}
{{- range $p := .Values.workerPools -}}
{{- if hasKey $seen $p.name -}}
{{- fail (printf "workerPools: the name %q is used twice" $p.name) -}}
{{- end -}}
{{- $_ := set $seen $p.name list -}}
{{- if not $p.queues -}}
{{- $open = append $open $p.name -}}
{{- end -}}
{{- end -}}
{{- if gt (len $open) 1 -}}
{{- fail (printf "workerPools: pools %s all leave queues empty: at most one pool takes the queues the others do not name" (join ", " $open)) -}}
{{- end -}}
{{- $owner := dict -}}
{{- $fullnames := dict -}}
{{- range $pool := $resolved.pools -}}
{{- if not $pool.queues -}}
{{- fail (printf "workerPools: pool %q serves no queue: the other pools name every queue of the registry" $pool.name) -}}
{{- end -}}
{{- range $q := $pool.queues -}}
{{- if not (has $q $declared) -}}
{{- fail (printf "workerPools: pool %q names queue %q, which the registry does not declare (declared: %s)" $pool.name $q (join ", " $declared)) -}}
{{- end -}}
{{- if hasKey $owner $q -}}
{{- fail (printf "workerPools: queue %q is in pools %q and %q: a queue belongs to one pool (each scales on its queues' load)" $q (get $owner $q) $pool.name) -}}
{{- end -}}
{{- $_ := set $owner $q $pool.name -}}
{{- end -}}
{{- if le (int $pool.terminationGracePeriodSeconds) (int $pool.drainTimeoutSeconds) -}}
{{- fail (printf "workerPools %q: terminationGracePeriodSeconds must be greater than drainTimeoutSeconds (from worker.* unless the pool sets them), or Kubernetes kills workers mid-drain" $pool.name) -}}
{{- end -}}
{{- if and $.Values.autoscaling.enabled (gt (int $pool.autoscaling.minReplicas) (int $pool.autoscaling.maxReplicas)) -}}
{{- fail (printf "workerPools %q: autoscaling minReplicas is greater than maxReplicas" $pool.name) -}}
{{- end -}}
{{- if and $.Values.keda.enabled (gt (int $pool.keda.fallbackReplicas) (int $pool.keda.maxReplicaCount)) -}}
{{- fail (printf "workerPools %q: keda fallbackReplicas is greater than maxReplicaCount" $pool.name) -}}
{{- end -}}
{{- if and $.Values.keda.enabled (gt (int $pool.keda.minReplicaCount) (int $pool.keda.maxReplicaCount)) -}}
{{- fail (printf "workerPools %q: keda minReplicaCount is greater than maxReplicaCount" $pool.name) -}}
{{- end -}}
{{- if and $.Values.keda.enabled (eq (int $pool.keda.minReplicaCount) 0) (not $.Values.database.migration.enabled) -}}
{{- fail (printf "workerPools %q: keda minReplicaCount 0 needs database.migration.enabled: the migration registers the queues, and without a worker nothing else does, so KEDA would never read a load to wake the pool" $pool.name) -}}
{{- end -}}
{{- if hasKey $fullnames $pool.fullname -}}
{{- fail (printf "workerPools %q and %q would both be named %s: shorten the release name, fullnameOverride or a pool's name" (get $fullnames $pool.fullname) $pool.name $pool.fullname) -}}
{{- end -}}
{{- $_ := set $fullnames $pool.fullname $pool.name -}}
{{- range $q := $pool.queues -}}
{{- $spec := index $registry.queues $q -}}
{{- if and (not (kindIs "invalid" $pool.concurrency)) (hasKey $spec "global_concurrency") $spec.global_concurrency (gt (int $pool.concurrency) (int $spec.global_concurrency)) -}}
{{- fail (printf "workerPools %q: concurrency %d exceeds queue %q's global_concurrency %d (DBOS refuses it: every container would fail to start)" $pool.name (int $pool.concurrency) $q (int $spec.global_concurrency)) -}}
{{- end -}}
{{- end -}}

{{- end -}}
{{- /* The autoscalers select their queues by a regex (prometheus-adapter joins In values
with |, KEDA's query too): it must match no other pool's queue. */ -}}
{{- range $pool := $resolved.pools -}}
{{- $pattern := printf "^(%s)$" (join "|" $pool.queues) -}}
{{- range $other := $resolved.pools -}}
{{- if ne $other.name $pool.name -}}
{{- range $q := $other.queues -}}
{{- if regexMatch $pattern $q -}}
{{- fail (printf "workerPools %q: its queues' selector %s also matches queue %q of pool %q (a '.' in a queue name matches any character): rename one of the queues" $pool.name $pattern $q $other.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $versions := dict (toString .Values.applicationVersion) "applicationVersion" -}}
{{- range $previous := .Values.previousVersions -}}
{{- $version := toString $previous.version -}}
{{- if hasKey $versions $version -}}
{{- fail (printf "previousVersions: version %q is listed twice, or is applicationVersion: list each earlier version once" $version) -}}
{{- end -}}
{{- $_ := set $versions $version "previousVersions" -}}
{{- if $previous.registry -}}
{{- if not (and (kindIs "map" $previous.registry.queues) $previous.registry.queues (kindIs "map" $previous.registry.workflows) $previous.registry.default_workflow) -}}
{{- fail (printf "previousVersions %q: registry must declare default_workflow, queues and workflows (the format of services/contract/registry.json), or be left out for the release's" $version) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $fleets := include "dqw.fleets" . | fromJson -}}
{{- range $problem := $fleets.problems -}}
{{- fail $problem -}}
{{- end -}}
{{- if and (eq (toString .Values.worker.rollingUpdate.maxSurge) "0") (eq (toString .Values.worker.rollingUpdate.maxUnavailable) "0") -}}
{{- fail "worker.rollingUpdate: maxSurge and maxUnavailable are both 0, so a rollout could never replace a worker (Kubernetes refuses it): allow one of them" -}}
{{- end -}}
{{- $fleetNames := dict -}}
{{- range $fleet := $fleets.fleets -}}
{{- $label := printf "pool %q at version %q" $fleet.name $fleet.version -}}
{{- if hasKey $fleetNames $fleet.fullname -}}
{{- fail (printf "workers of %s and of %s would both be named %s: rename a pool, or shorten the release name or fullnameOverride" (get $fleetNames $fleet.fullname) $label $fleet.fullname) -}}
{{- end -}}
{{- $_ := set $fleetNames $fleet.fullname $label -}}
{{- end -}}
{{- if and $resolved.rest (not $open) -}}
{{- fail (printf "workerPools: no pool serves queue(s) %s of the registry: name them in a pool, or leave one pool's queues empty to serve every queue the others do not name" (join ", " $resolved.rest)) -}}
{{- end -}}
{{- with .Values.database.maxConnections -}}
{{- $budget := sub (int .) (int $.Values.database.reservedConnections) -}}
{{- $needed := int (include "dqw.maxConnections" $) -}}
{{- if gt $needed $budget -}}
{{- fail (printf "the release may open %d database connections at its maximum (per worker pool and version: (max workers + rolling-update surge) x (worker.dbPoolSize %d + 4); API: (replicas + surge) x processes x dbPoolSize; migration: 1), more than database.maxConnections %d minus database.reservedConnections %d: lower the pools' maximum replicas (previousVersions[].maxReplicas for an earlier version), worker.rollingUpdate.maxSurge or the pool sizes, or raise max_connections and database.maxConnections" $needed (int $.Values.worker.dbPoolSize) (int .) (int $.Values.database.reservedConnections)) -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) -}}
{{- fail "set database.existingSecret (recommended) or database.url: the services need the system database" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (include "dqw.podDeletionCost.any" .) (not .Values.networkPolicy.kubernetesApi) -}}
{{- fail "networkPolicy.kubernetesApi: the workers patch their pods' deletion cost (worker.podDeletionCost) through the Kubernetes API; name its address and port, or they could not reach it" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.database.to) -}}
{{- fail "networkPolicy.database.to: name where the database is (an ipBlock, or a namespaceSelector and podSelector), or every pod would be cut off from it" -}}
{{- end -}}
{{- if eq (int .Values.api.metricsPort) (int .Values.api.port) -}}
{{- fail "api.metricsPort must differ from api.port: the metrics have a port of their own" -}}
{{- end -}}
{{- if eq .Values.api.auth.mode "jwt" -}}
{{- with .Values.api.auth.jwt -}}
{{- if not (and .issuer .audience (or .jwksUrl .jwksFile)) -}}
{{- fail "api.auth.mode=jwt needs api.auth.jwt.issuer, api.auth.jwt.audience and api.auth.jwt.jwksUrl (or jwksFile): your identity provider's issuer, the audience its tokens name for this API, and where its signing keys are" -}}
{{- end -}}
{{- if and .jwksUrl .jwksFile -}}
{{- fail "api.auth.jwt: set jwksUrl or jwksFile, not both" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.api.auth.mode "tokens") (not .Values.api.auth.existingSecret) -}}
{{- fail "api.auth.existingSecret: name the Secret holding the API's token file (key api.auth.secretKey, lines '<name> <role> sha256:<digest>' made with python -m services.api new-token NAME read|operate), or set api.auth.mode=none to let anyone who reaches the API call it" -}}
{{- end -}}
{{- if lt (float64 .Values.executorGraceSeconds) (addf 2 (mulf 4 (float64 .Values.worker.heartbeatIntervalSeconds))) -}}
{{- fail "executorGraceSeconds must be at least four times worker.heartbeatIntervalSeconds plus 2 (workers refuse to start otherwise)" -}}
{{- end -}}
{{- end -}}

{{/* Topology spread across zones and nodes by default, best effort. */}}
{{- define "dqw.topologySpread" -}}
{{- if .constraints -}}
{{ toYaml .constraints }}
{{- else -}}
{{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
- maxSkew: 1
  topologyKey: {{ $key }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "dqw.selectorLabels" (dict "ctx" $.ctx "component" $.component) | nindent 6 }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* What every container gets from the top-level values: env from Secrets or ConfigMaps, and
extra mounts (a private CA bundle for sslmode=verify-full, say). */}}
{{- define "dqw.extraEnvFrom" -}}
{{- with .Values.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A pod's own additions: priority class, init containers; pass (dict "ctx" $ "of" $spec)
where $spec is api, a pool, or the migration's values. */}}
{{- define "dqw.podExtras" -}}
{{- with .of.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .of.initContainers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The label every sample of this release's services carries (the ServiceMonitors add it),
and so every selector, query and alert of the release names: two releases in a namespace
never read each other's load. */}}
{{- define "dqw.releaseLabel" -}}queue_worker_release{{- end -}}
{{- define "dqw.scrapeLabels" -}}
- targetLabel: {{ include "dqw.releaseLabel" . }}
  replacement: {{ .Release.Name | quote }}
{{- end -}}

{{/* What a migration depends on: the chart, the image and the registry (a new one of any is a
new Job when the Job is not a hook). */}}
{{- define "dqw.migrationDigest" -}}
{{- printf "%s|%s|%s" .Chart.Version (include "dqw.image" (dict "ctx" . "component" "worker")) (include "dqw.registry" .) | sha256sum | trunc 8 -}}
{{- end -}}

{{/* Egress every pod of the release has under networkPolicy: DNS, the database, and the
extra rules of the values. */}}
{{- define "dqw.networkPolicy.egress" -}}
{{- $np := .Values.networkPolicy -}}
- to:
    {{- toYaml $np.dns.to | nindent 4 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
- to:
    {{- toYaml $np.database.to | nindent 4 }}
  ports:
    {{- toYaml $np.database.ports | nindent 4 }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}
