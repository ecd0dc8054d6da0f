{{- define "anchorage.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "anchorage.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "anchorage.headless" -}}
{{- printf "%s-nodes" (include "anchorage.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "anchorage.peers" -}}
{{- $name := include "anchorage.fullname" . -}}
{{- $svc := include "anchorage.headless" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s.%s.svc:%v" $name $i $svc $.Release.Namespace $.Values.service.port) -}}
{{- end -}}
{{- join ", " $urls -}}
{{- end -}}
