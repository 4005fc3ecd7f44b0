{{/* Names and labels ------------------------------------------------------ */}}

{{- define "longctx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "longctx.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- /* 40, not 63: KubeRay appends a cluster suffix and group names to pod names. */ -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "longctx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "longctx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "longctx.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "longctx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Ray pods (head and workers) of this release, of every RayCluster KubeRay
creates for it: a NewCluster upgrade runs two side by side. Not the `helm test`
pod, which carries the release's labels but only needs the API. */}}
{{- define "longctx.rayPodSelector" -}}
matchLabels:
  {{- include "longctx.selectorLabels" . | nindent 2 }}
matchExpressions:
  - {key: longctx.io/component, operator: In, values: [head, worker]}
{{- end -}}

{{/* The HTTP API port the pods listen on: the profile's ingress.port. */}}
{{- define "longctx.apiPort" -}}
{{- $cluster := include "longctx.cluster" . | fromYaml -}}
{{- int (($cluster.ingress | default dict).port | default 8000) -}}
{{- end -}}

{{- define "longctx.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "longctx.apiServiceName" -}}
{{- printf "%s-api" (include "longctx.fullname" .) -}}
{{- end -}}

{{- define "longctx.apiKeySecretName" -}}
{{- default (printf "%s-api-keys" (include "longctx.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The profile ------------------------------------------------------------
The one source of truth: `clusterYaml` (a whole profile file) or `cluster`.
Everything else reads it through this helper, parsed with fromYaml. */}}

{{- define "longctx.cluster" -}}
{{- $profile := dict -}}
{{- if .Values.clusterYaml -}}
{{- $profile = fromYaml .Values.clusterYaml -}}
{{- if hasKey $profile "Error" -}}
{{- fail (printf "clusterYaml is not valid YAML: %s" $profile.Error) -}}
{{- end -}}
{{- else -}}
{{- if not .Values.cluster -}}
{{- fail "set `cluster` (a profile, as in deployments/*.yaml) or `clusterYaml`" -}}
{{- end -}}
{{- $profile = deepCopy .Values.cluster -}}
{{- end -}}
{{- include "longctx.applyServeOptionOverrides" (dict "profile" $profile "overrides" (.Values.overrides | default list)) -}}
{{- toYaml $profile -}}
{{- end -}}

{{/* Overrides of what reaches Serve as deployment options (a pool's replicas
and graceful_shutdown_timeout_s, longctx.serveDeployments), applied here to the
profile everything reads: the worker groups then follow a new replicas.max too.
The other overrides go to the app as before. Values are parsed as YAML, as
cluster.config.apply_override does. */}}
{{- define "longctx.serveOptionOverridePattern" -}}
^pools\.([a-z0-9][a-z0-9-]*)\.(replicas|replicas\.([a-z_]+)|graceful_shutdown_timeout_s)=(.*)$
{{- end -}}

{{- define "longctx.applyServeOptionOverrides" -}}
{{- $re := include "longctx.serveOptionOverridePattern" . -}}
{{- $profile := .profile -}}
{{- range $assignment := .overrides -}}
{{- if regexMatch $re $assignment -}}
{{- $name := regexReplaceAll $re $assignment "${1}" -}}
{{- $key := regexReplaceAll $re $assignment "${2}" -}}
{{- $field := regexReplaceAll $re $assignment "${3}" -}}
{{- $parsed := fromYaml (printf "value: %s" (regexReplaceAll $re $assignment "${4}")) -}}
{{- if hasKey $parsed "Error" -}}
{{- fail (printf "override %s: the value is not YAML: %s" $assignment $parsed.Error) -}}
{{- end -}}
{{- $target := dict -}}
{{- range $profile.pools -}}{{- if eq .name $name -}}{{- $target = . -}}{{- end -}}{{- end -}}
{{- if not $target -}}
{{- fail (printf "override %s: no pool named %s" $assignment $name) -}}
{{- end -}}
{{- if $field -}}
{{- if not (has $field (list "min" "max" "initial" "target_ongoing_requests")) -}}
{{- fail (printf "override %s: replicas has min, max, initial and target_ongoing_requests" $assignment) -}}
{{- end -}}
{{- $replicas := $target.replicas | default dict -}}
{{- $_ := set $replicas $field $parsed.value -}}
{{- $_ := set $target "replicas" $replicas -}}
{{- else -}}
{{- $_ := set $target $key $parsed.value -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "longctx.isServeOptionOverride" -}}
{{- if regexMatch (include "longctx.serveOptionOverridePattern" .) . -}}true{{- end -}}
{{- end -}}

{{/* A model path as the app will see it: ${VAR:-default} -> default, ${VAR} -> ""
(the pods set none of the profile's variables), like cluster.config._expand_env. */}}
{{- define "longctx.expandPath" -}}
{{- regexReplaceAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-([^}]*))?\\}" . "${2}" -}}
{{- end -}}

{{/* Worker groups --------------------------------------------------------------
One group per distinct (accelerator_type, tensor_parallel_size): a pod hosts
one replica (Ray's STRICT_PACK keeps a TP group on one node). Replica bounds
are sums over the group's pools; kvTierGi is the largest KV tier of its pools.
This is the only place the chart looks at pools, and
cluster.planner.worker_shapes computes the same (tests compare; a GPU pool
without accelerator_type is on defaultAccelerator here, None there). */}}

{{- define "longctx.workerGroups" -}}
{{- $cluster := include "longctx.cluster" . | fromYaml -}}
{{- $device := $cluster.device | default "gpu" -}}
{{- $groups := dict -}}
{{- $order := list -}}
{{- range $pool := $cluster.pools -}}
{{- $engine := $pool.engine | default dict -}}
{{- $tp := int ($engine.tensor_parallel_size | default 1) -}}
{{- $acc := $pool.accelerator_type | default "" -}}
{{- /* A GPU pool without accelerator_type (Ray places it on any GPU) still needs
nodes of one product: defaultAccelerator's (_lifecycle.tpl). */ -}}
{{- if and (eq $device "gpu") (not $acc) -}}{{- $acc = include "longctx.defaultAccelerator" $ -}}{{- end -}}
{{- $kind := $device -}}
{{- if $acc -}}{{- $kind = regexReplaceAll "[^a-z0-9]+" (lower $acc) "-" -}}{{- end -}}
{{- $name := printf "%s-x%d" $kind $tp -}}
{{- $r := $pool.replicas | default dict -}}
{{- $min := 1 -}}{{- if hasKey $r "min" -}}{{- $min = int $r.min -}}{{- end -}}
{{- $max := 1 -}}{{- if hasKey $r "max" -}}{{- $max = int $r.max -}}{{- end -}}
{{- $initial := $min -}}
{{- if and (hasKey $r "initial") (not (kindIs "invalid" $r.initial)) -}}{{- $initial = int $r.initial -}}{{- end -}}
{{- if not (hasKey $groups $name) -}}
{{- /* resource: the Ray custom resource only this group's pods advertise and
its pools' bundles ask for (rayservice.yaml), so a replica lands only in a pod
of its own shape. */ -}}
{{- $_ := set $groups $name (dict "name" $name "accelerator" $acc "devices" $tp "device" $device "minReplicas" 0 "maxReplicas" 0 "replicas" 0 "pools" list "models" list "kvTierGi" 0 "resource" (printf "longctx-group-%s" $name)) -}}
{{- $order = append $order $name -}}
{{- end -}}
{{- $g := get $groups $name -}}
{{- $_ := set $g "minReplicas" (add $g.minReplicas $min) -}}
{{- $_ := set $g "maxReplicas" (add $g.maxReplicas $max) -}}
{{- $_ := set $g "replicas" (add $g.replicas $initial) -}}
{{- $_ := set $g "pools" (append $g.pools $pool.name) -}}
{{- if not (has $pool.model $g.models) -}}{{- $_ := set $g "models" (append $g.models $pool.model) -}}{{- end -}}
{{- /* A native KV tier lives in the engine's processes (vLLM 0.29: one /dev/shm
region): its pod grows by ceil(size_gib) + 1 GiB of pinned-memory overhead,
KVTierConfig.pod_memory_gib. Any pod of the group may host any of its pools,
so the group takes its largest tier. lmcache keeps KV in its own server. */ -}}
{{- with $pool.kv_tier -}}
{{- if eq (.backend | default "native") "native" -}}
{{- $tierGi := add (int (ceil (float64 .size_gib))) 1 -}}
{{- if gt $tierGi (int $g.kvTierGi) -}}{{- $_ := set $g "kvTierGi" $tierGi -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $list := list -}}
{{- range $order -}}{{- $list = append $list (get $groups .) -}}{{- end -}}
{{- toYaml (dict "groups" $list) -}}
{{- end -}}

{{/* Serve deployment options ------------------------------------------------
What Serve changes on live replicas without restarting them, per deployment
(deployments/serve_options.py computes the same for `python -m cluster run`,
and says why they must not travel in the app's args; tests/helm/test_scaling.py
compares): each pool's replica bounds and drain timeout, and the ingress's view
of every pool's bounds (its user_config) with a drain as long as the longest.
Defaults as in cluster/config: replicas {min 1, max 1, initial min,
target_ongoing_requests 4}; graceful_shutdown_timeout_s: the pool's own, else
its request_timeout_s, else ingress.request_timeout_s (default 3600). */}}

{{- define "longctx.serveDeployments" -}}
{{- $cluster := include "longctx.cluster" . | fromYaml -}}
{{- $ingress := $cluster.ingress | default dict -}}
{{- $ingressTimeout := float64 ($ingress.request_timeout_s | default 3600) -}}
{{- $pools := list -}}
{{- $bounds := dict -}}
{{- $longest := 0.0 -}}
{{- range $pool := $cluster.pools -}}
{{- $r := $pool.replicas | default dict -}}
{{- $min := 1 -}}{{- if hasKey $r "min" -}}{{- $min = int $r.min -}}{{- end -}}
{{- $max := 1 -}}{{- if hasKey $r "max" -}}{{- $max = int $r.max -}}{{- end -}}
{{- $hasInitial := and (hasKey $r "initial") (not (kindIs "invalid" $r.initial)) -}}
{{- $initial := $min -}}{{- if $hasInitial -}}{{- $initial = int $r.initial -}}{{- end -}}
{{- $target := 4.0 -}}{{- if hasKey $r "target_ongoing_requests" -}}{{- $target = float64 $r.target_ongoing_requests -}}{{- end -}}
{{- if or (gt $min $max) (lt $initial $min) (gt $initial $max) -}}
{{- fail (printf "pool %s: replicas need min <= initial <= max (min %d, initial %d, max %d)" $pool.name $min $initial $max) -}}
{{- end -}}
{{- $grace := $ingressTimeout -}}
{{- if $pool.request_timeout_s -}}{{- $grace = float64 $pool.request_timeout_s -}}{{- end -}}
{{- if $pool.graceful_shutdown_timeout_s -}}{{- $grace = float64 $pool.graceful_shutdown_timeout_s -}}{{- end -}}
{{- if gt $grace $longest -}}{{- $longest = $grace -}}{{- end -}}
{{- $autoscaling := dict "min_replicas" $min "max_replicas" $max "initial_replicas" $initial "target_ongoing_requests" $target -}}
{{- $pools = append $pools (dict "name" (printf "pool-%s" $pool.name) "autoscaling_config" $autoscaling "graceful_shutdown_timeout_s" $grace) -}}
{{- $_ := set $bounds $pool.name (dict "min" $min "max" $max "initial" (ternary $initial nil $hasInitial) "target_ongoing_requests" $target) -}}
{{- end -}}
{{- $ingressOptions := dict "name" "ingress" "user_config" (dict "pool_replicas" $bounds) "graceful_shutdown_timeout_s" $longest -}}
{{- toYaml (dict "deployments" (prepend $pools $ingressOptions)) -}}
{{- end -}}

{{/* The longest graceful_shutdown_timeout_s of any deployment, in whole seconds:
the pods' termination grace period must cover it and the drain. */}}
{{- define "longctx.maxGracefulShutdownS" -}}
{{- $longest := 0.0 -}}
{{- range (include "longctx.serveDeployments" . | fromYaml).deployments -}}
{{- if gt (float64 .graceful_shutdown_timeout_s) $longest -}}{{- $longest = float64 .graceful_shutdown_timeout_s -}}{{- end -}}
{{- end -}}
{{- int (ceil $longest) -}}
{{- end -}}

{{/* Pod pieces shared by head and workers ------------------------------------ */}}

{{- define "longctx.monitoringEnabled" -}}
{{- $flag := toString .flag -}}
{{- if or (eq $flag "true") (and (eq $flag "auto") (.ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind))) -}}true{{- end -}}
{{- end -}}

{{- define "longctx.env" -}}
{{- if .Values.logs.toStderr }}
{{- /* Ray's own switch (ray_constants.LOGGING_REDIRECT_STDERR_ENVIRONMENT_VARIABLE):
`ray start` and the raylet leave every Ray process's stdout/stderr on the
container's instead of files under /tmp/ray/session_latest/logs, so Serve's
replicas (the ingress, the pools), the vLLM engine processes they start and
Ray's own daemons all show in `kubectl logs`. Serve's stream handler is on by
default; set explicitly so RAY_SERVE_THROUGHPUT_OPTIMIZED cannot turn it off. */}}
- name: RAY_LOG_TO_STDERR
  value: "1"
- name: RAY_SERVE_LOG_TO_STDERR
  value: "1"
{{- end }}
{{- with include "longctx.redisSecretName" . }}
{{- /* The documents' Redis password, for the store of every ingress replica
(documents.store.password_env); never in the serve config. */}}
- name: {{ include "longctx.redisPasswordEnv" $ }}
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "longctx.redisSecretKey" $ }}
{{- end }}
{{- end -}}

{{/* The documents' Redis ---------------------------------------------------
documentStore.mode bundled (a StatefulSet of this release, redis.yaml) or
external (documentStore.external.url). */}}

{{- define "longctx.redisName" -}}
{{- printf "%s-redis" (include "longctx.fullname" .) -}}
{{- end -}}

{{- define "longctx.redisPasswordEnv" -}}LONGCTX_REDIS_PASSWORD{{- end -}}

{{- define "longctx.redisPort" -}}6379{{- end -}}

{{- define "longctx.redisSelectorLabels" -}}
{{ include "longctx.selectorLabels" . }}
longctx.io/component: redis
{{- end -}}

{{/* The Secret holding the documents' Redis password; empty for an external
Redis without one. */}}
{{- define "longctx.redisSecretName" -}}
{{- $store := .Values.documentStore -}}
{{- if eq $store.mode "bundled" -}}
{{- default (include "longctx.redisName" .) $store.bundled.existingSecret -}}
{{- else -}}
{{- $store.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "longctx.redisSecretKey" -}}
{{- $store := .Values.documentStore -}}
{{- if eq $store.mode "bundled" -}}{{- $store.bundled.secretKey -}}{{- else -}}{{- $store.external.secretKey -}}{{- end -}}
{{- end -}}

{{/* The documents' Redis URL as the ingress replicas see it (no password: that
comes from the environment). */}}
{{- define "longctx.redisUrl" -}}
{{- $store := .Values.documentStore -}}
{{- if eq $store.mode "bundled" -}}
{{- printf "redis://%s.%s.svc:%s/%d" (include "longctx.redisName" .) .Release.Namespace (include "longctx.redisPort" .) (int $store.bundled.database) -}}
{{- else -}}
{{- $url := required "documentStore.external.url is required when documentStore.mode is external" $store.external.url -}}
{{- if not (regexMatch "^rediss?://[^/@]+(/[0-9]+)?$" $url) -}}
{{- fail (printf "documentStore.external.url %q must be redis://host:port[/db] or rediss://...: no user or password (they come from documentStore.external.existingSecret)" $url) -}}
{{- end -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{/* The app overrides that point the profile's documents.store at that Redis;
the profile's limits, key_prefix and timeout stay. */}}
{{- define "longctx.documentStoreOverrides" -}}
{{- $overrides := list "documents.store.backend=redis" (printf "documents.store.url=%s" (include "longctx.redisUrl" .)) -}}
{{- if include "longctx.redisSecretName" . -}}
{{- $overrides = append $overrides (printf "documents.store.password_env=%s" (include "longctx.redisPasswordEnv" .)) -}}
{{- end -}}
{{- toJson $overrides -}}
{{- end -}}

{{/* GCS fault tolerance: KubeRay's gcsFaultToleranceOptions, on the documents'
Redis unless gcsFaultTolerance.redis.address names another. Ray's GCS keeps its
keys under the RayCluster's namespace (its UID unless set) in database 0. */}}
{{- define "longctx.gcsFaultToleranceOptions" -}}
{{- $ft := .Values.gcsFaultTolerance -}}
{{- $address := $ft.redis.address -}}
{{- $secret := $ft.redis.existingSecret -}}
{{- $key := $ft.redis.secretKey -}}
{{- if not $address -}}
{{- $url := urlParse (include "longctx.redisUrl" .) -}}
{{- $address = $url.host -}}
{{- if eq $url.scheme "rediss" -}}{{- $address = printf "rediss://%s" $address -}}{{- end -}}
{{- $secret = include "longctx.redisSecretName" . -}}
{{- $key = include "longctx.redisSecretKey" . -}}
{{- end -}}
redisAddress: {{ $address | quote }}
{{- with $secret }}
redisPassword:
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $key }}
{{- end }}
{{- with $ft.externalStorageNamespace }}
externalStorageNamespace: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The weights: their init containers and volume are in _weights.tpl. */}}

{{- define "longctx.modelsMount" -}}
{{- if ne .Values.weights.source "none" }}
- name: models
  mountPath: {{ .Values.weights.mountPath }}
  readOnly: {{ eq .Values.weights.source "pvc" }}
{{- end }}
{{- end -}}

{{/* Fail early when a model path is outside the weights volume. */}}
{{- define "longctx.checkPaths" -}}
{{- if ne .Values.weights.source "none" -}}
{{- $cluster := include "longctx.cluster" . | fromYaml -}}
{{- $root := trimSuffix "/" .Values.weights.mountPath -}}
{{- range $name, $m := $cluster.models -}}
{{- $path := include "longctx.expandPath" $m.path -}}
{{- if not (hasPrefix (printf "%s/" $root) $path) -}}
{{- fail (printf "model %s: path %q is not under weights.mountPath %q; the pods would not find the weights" $name $path $root) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The operator's deep-thinking prompt files (values thinkingPrompts), on every Ray pod. */}}
{{- define "longctx.thinkingVolume" -}}
{{- with .Values.thinkingPrompts }}
{{- if .configMap }}
- name: thinking-prompts
  configMap: {name: {{ .configMap }}}
{{- else if .secret }}
- name: thinking-prompts
  secret: {secretName: {{ .secret }}}
{{- end }}
{{- end }}
{{- end -}}

{{- define "longctx.thinkingMount" -}}
{{- with .Values.thinkingPrompts }}
{{- if or .configMap .secret }}
- {name: thinking-prompts, mountPath: {{ .mountPath }}, readOnly: true}
{{- end }}
{{- end }}
{{- end -}}
