{{/* What KubeRay v1.7 refuses in a RayService, checked at render time so that
`helm install` fails instead of the operator marking the RayService
ValidationFailed (tests/helm/kuberay_validation.py ports the operator's rules). */}}

{{/* ValidateRayServiceMetadata: the RayService name is a DNS-1035 label of at
most 47 characters. The chart truncates it to 40; a release name that starts
with a digit or holds a dot is a valid Helm release but not a valid RayService. */}}
{{- define "longctx.checkRayServiceName" -}}
{{- $name := include "longctx.fullname" . -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "RayService name %q (from the release name) is not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter), which KubeRay requires: choose another release name or set fullnameOverride" $name) -}}
{{- end -}}
{{- end -}}
