{{/* The chart name (app.kubernetes.io/name). */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object name: the release name, unless it already contains the chart
name, in which case the release name alone ("switchyard" gives switchyard-operator, ...). */}}
{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "switchyard.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.operatorName" -}}{{ include "switchyard.fullname" . }}-operator{{- end -}}
{{- define "switchyard.gatewayName" -}}{{ include "switchyard.fullname" . }}-gateway{{- end -}}
{{- define "switchyard.dataplaneServiceAccount" -}}{{ include "switchyard.fullname" . }}-dataplane{{- end -}}
{{/* The ConfigMap the operator publishes its generated CA in (--ca-configmap). */}}
{{- define "switchyard.caConfigMap" -}}{{ include "switchyard.fullname" . }}-ca{{- end -}}
{{- define "switchyard.storeClaim" -}}
{{- default (printf "%s-operator-data" (include "switchyard.fullname" .)) .Values.store.sqlite.persistence.existingClaim -}}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" . "component" "operator"). */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Object labels; call with (dict "ctx" . "component" "operator"). */}}
{{- define "switchyard.labels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "switchyard.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* Refuses settings that cannot work. */}}
{{- define "switchyard.validate" -}}
{{- if not (has .Values.store.type (list "sqlite" "postgres")) -}}
{{- fail (printf "store.type must be sqlite or postgres, not %q" .Values.store.type) -}}
{{- end -}}
{{- if and (eq .Values.store.type "sqlite") (gt (int .Values.operator.replicas) 1) -}}
{{- fail "operator.replicas > 1 needs store.type=postgres: the SQLite store is one file on a ReadWriteOnce volume" -}}
{{- end -}}
{{- if and (eq .Values.store.type "postgres") (not .Values.store.postgres.secretName) -}}
{{- fail "store.type=postgres needs store.postgres.secretName (a Secret holding the postgres:// URL)" -}}
{{- end -}}
{{- if le (mul (int .Values.gateway.terminationGracePeriodSeconds) 1000) (int64 .Values.gateway.drainTimeoutMs) -}}
{{- fail "gateway.terminationGracePeriodSeconds must be longer than gateway.drainTimeoutMs, or draining is cut short" -}}
{{- end -}}
{{- end -}}

{{/* The pod and container security contexts of both workloads (the images run as 65532). */}}
{{- define "switchyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "switchyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* nodeSelector, tolerations, affinity and pull secrets of a pod; call with (dict "ctx" . "pod" .Values.operator). */}}
{{- define "switchyard.scheduling" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The rules of the operator on what it watches; call with (dict "kinds" $kinds). */}}
{{- define "switchyard.watchRules" -}}
- apiGroups: ["switchyard.dev"]
  resources:
    {{- range .kinds }}
    - {{ . }}
    {{- end }}
  verbs: ["list", "watch"]
- apiGroups: ["switchyard.dev"]
  resources:
    {{- range .kinds }}
    - {{ . }}/status
    {{- end }}
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets", "services"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
