{{/* API keys: the Secret mounted as the app's keys file (values.yaml auth;
docs/security.md, API keys). A volume, not an env var: the kubelet updates a
mounted Secret in place (a new `..data` directory swapped in atomically), and
the ingress reloads the file (ingress.auth.reload_interval_s), so a rotation
reaches running pods. No subPath: a subPath mount never sees an update. */}}

{{- define "longctx.apiKeysDir" -}}/etc/longctx/api-keys{{- end -}}

{{/* The keys file the app reads: the override the chart adds to the profile. */}}
{{- define "longctx.apiKeysFile" -}}{{ include "longctx.apiKeysDir" . }}/keys{{- end -}}

{{- define "longctx.apiKeysMount" -}}
{{- if .Values.auth.enabled }}
- {name: api-keys, mountPath: {{ include "longctx.apiKeysDir" . }}, readOnly: true}
{{- end }}
{{- end -}}

{{- define "longctx.apiKeysVolume" -}}
{{- if .Values.auth.enabled }}
- name: api-keys
  secret:
    secretName: {{ include "longctx.apiKeySecretName" . }}
    items:
      - {key: {{ .Values.auth.secretKey }}, path: keys}
    # Pods start before the Secret exists (it may come from sealed-secrets or
    # external-secrets later): the ingress refuses every key until it appears,
    # then loads it without a restart.
    optional: true
{{- end }}
{{- end -}}
