{{/* Name of the chart, or nameOverride. */}}
{{- define "reef.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: fullnameOverride, or "<release>-<chart>" (just the release
name when it already contains the chart name). Kept short enough for "-operator" suffixes. */}}
{{- define "reef.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "reef.operatorName" -}}{{ include "reef.fullname" . }}-operator{{- end }}
{{- define "reef.agentName" -}}{{ include "reef.fullname" . }}-agent{{- end }}

{{/* Labels every object carries. */}}
{{- define "reef.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "reef.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: reef
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "operator"). */}}
{{- define "reef.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reef.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "reef.componentLabels" -}}
{{ include "reef.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "reef.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* User name of the agent's ServiceAccount, as the API server authenticates it. */}}
{{- define "reef.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "reef.agentName" . }}
{{- end }}

{{/* A Role + RoleBinding letting one component's ServiceAccount create Events in
"default", where Events about cluster-scoped objects (MeshAgents, MeshNetworks) live.
Pass (dict "root" $ "name" <ServiceAccount name> "component" <component>). */}}
{{- define "reef.eventsRole" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}-events
  namespace: default
  labels:
    {{- include "reef.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}-events
  namespace: default
  labels:
    {{- include "reef.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}-events
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ .root.Release.Namespace }}
{{- end }}
