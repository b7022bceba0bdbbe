{{/* Names and labels shared by the templates. */}}
{{- define "audit-timeline.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "audit-timeline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "audit-timeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "audit-timeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "audit-timeline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "audit-timeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "audit-timeline.secretName" -}}
{{- default (include "audit-timeline.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "audit-timeline.proxySecretName" -}}
{{- default (printf "%s-oauth2-proxy" (include "audit-timeline.fullname" .)) .Values.oauth2Proxy.existingSecret -}}
{{- end -}}

{{- define "audit-timeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "audit-timeline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "audit-timeline.scheme" -}}
{{- if .Values.tls.secretName -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* Environment of the app and of the migration init container. */}}
{{- define "audit-timeline.env" -}}
- name: AUDIT_TIMELINE_REQUIRE_DATABASE_URL
  value: "true"
- name: AUDIT_TIMELINE_DATA_DIR
  value: /data
- name: AUDIT_TIMELINE_HOST
  value: "0.0.0.0"
- name: AUDIT_TIMELINE_PORT
  value: "8000"
- name: AUDIT_TIMELINE_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ include "audit-timeline.secretName" . }}, key: AUDIT_TIMELINE_DATABASE_URL}
- name: AUDIT_TIMELINE_REDACTION_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "audit-timeline.secretName" . }}, key: AUDIT_TIMELINE_REDACTION_KEY}
- name: AUDIT_TIMELINE_INGEST_TOKENS
  valueFrom:
    secretKeyRef: {name: {{ include "audit-timeline.secretName" . }}, key: AUDIT_TIMELINE_INGEST_TOKENS, optional: true}
- name: AUDIT_TIMELINE_ACCESS_TOKENS
  valueFrom:
    secretKeyRef: {name: {{ include "audit-timeline.secretName" . }}, key: AUDIT_TIMELINE_ACCESS_TOKENS, optional: true}
{{- if .Values.tls.secretName }}
- name: AUDIT_TIMELINE_TLS_CERTFILE
  value: /etc/audit-timeline/tls/tls.crt
- name: AUDIT_TIMELINE_TLS_KEYFILE
  value: /etc/audit-timeline/tls/tls.key
{{- end }}
{{- if .Values.tls.clientCaSecret }}
- name: AUDIT_TIMELINE_TLS_CLIENT_CA
  value: /etc/audit-timeline/client-ca/ca.crt
{{- end }}
{{- if .Values.oauth2Proxy.enabled }}
- name: AUDIT_TIMELINE_AUTH_PROXY_ADDRESSES
  value: 127.0.0.1/32
- name: AUDIT_TIMELINE_AUTH_PROXY_ROLE
  value: {{ .Values.oauth2Proxy.authProxyRole | quote }}
{{- end }}
{{- range $name, $value := .Values.config }}
{{- if ne (toString $value) "" }}
- name: {{ printf "AUDIT_TIMELINE_%s" (upper $name) }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
