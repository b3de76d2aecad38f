{{/*
The control plane's namespace. The controllers and every proxy address the control plane as sinew-*.sinew.svc, so
the chart refuses any other namespace rather than render a control plane nobody can reach.
*/}}
{{- define "sinew.namespace" -}}
{{- if ne .Release.Namespace "sinew" -}}
{{- fail (printf "the sinew control plane must be installed in the namespace \"sinew\" (got %q): run helm with --namespace sinew" .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end -}}

{{- define "sinew.trustDomain" -}}
{{- default .Values.clusterDomain .Values.identity.trustDomain -}}
{{- end -}}

{{/* The images' default tag: image.tag, else the chart's appVersion. */}}
{{- define "sinew.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* <registry>/<name>:<version or tag>; call with (dict "root" $ "image" .Values.proxy.image). */}}
{{- define "sinew.image" -}}
{{- $tag := default (include "sinew.tag" .root) .image.version -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .image.name $tag -}}
{{- end -}}

{{- define "sinew.trustAnchors" -}}
{{- required "identity.trustAnchorsPEM is required: the PEM trust anchors of the mesh (sinew install generates them; with helm use --set-file identity.trustAnchorsPEM=ca.crt)" .Values.identity.trustAnchorsPEM -}}
{{- end -}}

{{/* Labels of every control-plane object; call with (dict "root" $ "component" "identity"). */}}
{{- define "sinew.labels" -}}
{{- $ns := include "sinew.namespace" .root -}}
sinew.dev/control-plane-ns: {{ $ns }}
{{- if .component }}
sinew.dev/control-plane-component: {{ .component }}
app.kubernetes.io/name: {{ .component }}
{{- end }}
app.kubernetes.io/part-of: sinew
app.kubernetes.io/version: {{ include "sinew.tag" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The selector of a component's pods (immutable in a Deployment: never add to it). */}}
{{- define "sinew.selector" -}}
sinew.dev/control-plane-ns: {{ include "sinew.namespace" .root }}
sinew.dev/control-plane-component: {{ .component }}
{{- end -}}

{{/* The container security context of the controllers. */}}
{{- define "sinew.controllerSecurityContext" -}}
runAsUser: {{ .Values.controllerUID }}
runAsGroup: {{ .Values.controllerUID }}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Scheduling of a component's pods: node selector, tolerations, anti-affinity in HA. */}}
{{- define "sinew.scheduling" -}}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.enablePodAntiAffinity }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector:
        matchLabels:
          {{- include "sinew.selector" . | nindent 10 }}
      topologyKey: kubernetes.io/hostname
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        labelSelector:
          matchLabels:
            {{- include "sinew.selector" . | nindent 12 }}
        topologyKey: topology.kubernetes.io/zone
{{- end }}
{{- end -}}

{{/* The pod-template metadata of a meshed control-plane pod: (dict "root" $ "component" c "deployment" d "annotations" a). */}}
{{- define "sinew.podMetadata" -}}
labels:
  sinew.dev/control-plane-component: {{ .component }}
  {{- include "sinew.proxy.labels" . | nindent 2 }}
  app.kubernetes.io/name: {{ .component }}
  app.kubernetes.io/part-of: sinew
  app.kubernetes.io/version: {{ include "sinew.tag" .root | quote }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  {{- include "sinew.proxy.annotations" . | nindent 2 }}
  {{- with .annotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
