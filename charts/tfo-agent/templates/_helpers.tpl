{{- define "tfo-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tfo-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tfo-agent.labels" -}}
{{ include "tfo-agent.selectorLabels" . }}
app.kubernetes.io/part-of: telemetryflow
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tfo-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tfo-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tfo-agent.secretName" -}}
{{- default (printf "%s-credentials" (include "tfo-agent.fullname" .)) .Values.credentials.existingSecret -}}
{{- end -}}

{{- define "tfo-agent.leaseName" -}}
{{- dig "collectors" "kubernetes" "leader_election" "lease_name" "tfo-agent-cluster" .Values.config -}}
{{- end -}}
