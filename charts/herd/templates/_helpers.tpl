{{/* The StatefulSet's name, prefix of every object: clusterName, or the release name. */}}
{{- define "herd.name" -}}
{{- default .Release.Name .Values.clusterName | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "herd.headlessService" -}}{{ include "herd.name" . }}-hl{{- end -}}
{{- define "herd.serviceAccount" -}}{{ include "herd.name" . }}-bot{{- end -}}
{{- define "herd.secretName" -}}{{ default (printf "%s-auth" (include "herd.name" .)) .Values.auth.existingSecret }}{{- end -}}

{{/* Labels that select this cluster's pods; never change them after install (immutable selector). */}}
{{- define "herd.selectorLabels" -}}
app.kubernetes.io/name: herd
app.kubernetes.io/instance: {{ include "herd.name" . }}
{{- end -}}

{{- define "herd.labels" -}}
{{ include "herd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector as a Kubernetes label-selector string, for the coordinator's watch of workers. */}}
{{- define "herd.podSelector" -}}
app.kubernetes.io/name=herd,app.kubernetes.io/instance={{ include "herd.name" . }}
{{- end -}}

{{- define "herd.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
