{{/* Pod lifecycle: drains, upgrades and node placement of pools -----------------
How long a request may live decides how long a draining pod, or the RayCluster
an upgrade replaces, must be kept; the same numbers drive the pods' grace
period, the preStop drain's deadline and KubeRay's deletion delay. */}}

{{/* The longest a request may live in the rendered profile, in whole seconds:
the largest of ingress.request_timeout_s (Serve's proxy timeout; 3600 when
unset, as IngressConfig), every pool's request_timeout_s and every pool's
graceful_shutdown_timeout_s (a stopping replica waits that long for its
requests). */}}
{{- define "longctx.longestRequestS" -}}
{{- $cluster := include "longctx.cluster" . | fromYaml -}}
{{- $longest := float64 ((($cluster.ingress | default dict).request_timeout_s) | default 3600) -}}
{{- range $cluster.pools -}}
{{- with .request_timeout_s -}}{{- if gt (float64 .) $longest -}}{{- $longest = float64 . -}}{{- end -}}{{- end -}}
{{- with .graceful_shutdown_timeout_s -}}{{- if gt (float64 .) $longest -}}{{- $longest = float64 . -}}{{- end -}}{{- end -}}
{{- end -}}
{{- int (ceil $longest) -}}
{{- end -}}

{{/* terminationGracePeriodSeconds of every Ray pod: drain.terminationGracePeriodSeconds,
or the longest request + drain.marginSeconds. */}}
{{- define "longctx.terminationGraceS" -}}
{{- $drain := .Values.drain -}}
{{- if kindIs "invalid" $drain.terminationGracePeriodSeconds -}}
{{- add (include "longctx.longestRequestS" .) (int $drain.marginSeconds) -}}
{{- else -}}
{{- int $drain.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* The preStop's deadline: the drain command must return before the kubelet's
SIGKILL at the end of the grace period, so it gets the grace period less
drain.exitSeconds. */}}
{{- define "longctx.drainDeadlineS" -}}
{{- $deadline := sub (int (include "longctx.terminationGraceS" .)) (int .Values.drain.exitSeconds) -}}
{{- if lt $deadline 1 -}}
{{- fail (printf "drain: terminationGracePeriodSeconds %s leaves no time to drain after drain.exitSeconds %d" (include "longctx.terminationGraceS" .) (int .Values.drain.exitSeconds)) -}}
{{- end -}}
{{- $deadline -}}
{{- end -}}

{{/* Pod spec and container pieces (indent them where included). */}}
{{- define "longctx.podGrace" -}}
terminationGracePeriodSeconds: {{ include "longctx.terminationGraceS" . }}
{{- end -}}

{{- define "longctx.preStop" -}}
{{- if .Values.drain.preStop }}
lifecycle:
  preStop:
    exec:
      # Ray drains this node (DrainNode): Serve starts its replicas elsewhere,
      # stops them here once their requests finish, and the command returns
      # when nothing is left (cluster/drain; the same path as `python -m
      # cluster drain-node` by hand).
      command: ["python", "-m", "cluster", "drain-node", "--deadline-s", "{{ include "longctx.drainDeadlineS" . }}"]
{{- end }}
{{- end -}}

{{/* KubeRay's rayClusterDeletionDelaySeconds: how long the old RayCluster of a
NewCluster upgrade keeps running after the Service moved to the new one, so
requests it still serves finish. At least the longest request. */}}
{{- define "longctx.deletionDelayS" -}}
{{- $longest := int (include "longctx.longestRequestS" .) -}}
{{- $set := .Values.rayClusterDeletionDelaySeconds -}}
{{- if kindIs "invalid" $set -}}
{{- add $longest (int .Values.drain.marginSeconds) -}}
{{- else if lt (int $set) $longest -}}
{{- fail (printf "rayClusterDeletionDelaySeconds %d is shorter than the profile's longest request (%d s): KubeRay would delete the old RayCluster under requests it still serves" (int $set) $longest) -}}
{{- else -}}
{{- int $set -}}
{{- end -}}
{{- end -}}

{{/* The GPU product of pools without accelerator_type: defaultAccelerator, which
must be in `accelerators` and have at least the GPU memory the profile was
planned for (gpu_memory_gib). */}}
{{- define "longctx.defaultAccelerator" -}}
{{- $name := .Values.defaultAccelerator -}}
{{- $entry := get .Values.accelerators $name -}}
{{- if not $entry -}}
{{- fail (printf "defaultAccelerator %q has no entry in accelerators (its node selector)" $name) -}}
{{- end -}}
{{- $cluster := include "longctx.cluster" . | fromYaml -}}
{{- if and $cluster.gpu_memory_gib $entry.memoryGiB (gt (float64 $cluster.gpu_memory_gib) (float64 $entry.memoryGiB)) -}}
{{- fail (printf "the profile is planned for %v GiB per GPU (gpu_memory_gib) but defaultAccelerator %s has %v GiB: set defaultAccelerator (or the pools' accelerator_type) to the GPU it was planned on" $cluster.gpu_memory_gib $name $entry.memoryGiB) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* KubeRay's clusterUpgradeOptions for NewClusterWithIncrementalUpgrade, with
what KubeRay's ValidateClusterUpgradeOptions requires checked at render time
(the operator would otherwise mark the RayService ValidationFailed). */}}
{{- define "longctx.clusterUpgradeOptions" -}}
{{- $o := .Values.clusterUpgradeOptions -}}
{{- if not .Values.autoscaler.enabled -}}
{{- fail "upgradeStrategy NewClusterWithIncrementalUpgrade needs autoscaler.enabled: KubeRay scales the new cluster up and the old one down through Ray's autoscaler" -}}
{{- end -}}
{{- if not $o.gatewayClassName -}}
{{- fail "upgradeStrategy NewClusterWithIncrementalUpgrade needs clusterUpgradeOptions.gatewayClassName: the GatewayClass of your Gateway API controller (kubectl get gatewayclass); KubeRay creates a Gateway of that class and shifts traffic with an HTTPRoute" -}}
{{- end -}}
{{- if gt (int $o.stepSizePercent) (int $o.maxSurgePercent) -}}
{{- fail (printf "clusterUpgradeOptions.stepSizePercent %d must not exceed maxSurgePercent %d (KubeRay's rule)" (int $o.stepSizePercent) (int $o.maxSurgePercent)) -}}
{{- end -}}
{{- if .Values.ingress.enabled -}}
{{- fail "ingress.enabled with NewClusterWithIncrementalUpgrade: KubeRay then serves through its Gateway (<release>-gateway) and creates no serve Service for the Ingress to point at; expose the Gateway instead" -}}
{{- end -}}
clusterUpgradeOptions:
  gatewayClassName: {{ $o.gatewayClassName | quote }}
  maxSurgePercent: {{ int $o.maxSurgePercent }}
  stepSizePercent: {{ int $o.stepSizePercent }}
  intervalSeconds: {{ int $o.intervalSeconds }}
{{- end -}}
