{{/*
The extension's namespace. Proxies allow tap only from spiffe://<td>/ns/sinew-viz/sa/tap, so the chart refuses
any other namespace rather than render a tap service every proxy would turn away.
*/}}
{{- define "viz.namespace" -}}
{{- if ne .Release.Namespace "sinew-viz" -}}
{{- fail (printf "the sinew-viz extension must be installed in the namespace \"sinew-viz\" (got %q): run helm with --namespace sinew-viz" .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end -}}

{{- define "viz.trustDomain" -}}
{{- default .Values.clusterDomain .Values.trustDomain -}}
{{- end -}}

{{- define "viz.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "viz.image" -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .Values.image.registry) .Values.image.name (include "viz.tag" .) -}}
{{- end -}}

{{- define "viz.trustAnchors" -}}
{{- required "identityTrustAnchorsPEM is required: the mesh's PEM trust anchors (sinew viz install reads them from the cluster; with helm use --set-file identityTrustAnchorsPEM=ca.crt)" .Values.identityTrustAnchorsPEM -}}
{{- end -}}

{{/* The Prometheus sinew-viz reads: the user's, or the one this chart deploys. */}}
{{- define "viz.prometheusUrl" -}}
{{- if .Values.prometheusUrl -}}
{{- .Values.prometheusUrl -}}
{{- else -}}
{{- printf "http://prometheus.%s.svc.%s:9090" (include "viz.namespace" .) .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; call with (dict "root" $ "component" "sinew-viz"). sinew viz uninstall selects on the first. */}}
{{- define "viz.labels" -}}
sinew.dev/extension: viz
{{- if .component }}
sinew.dev/viz-component: {{ .component }}
app.kubernetes.io/name: {{ .component }}
{{- end }}
app.kubernetes.io/part-of: sinew-viz
app.kubernetes.io/version: {{ include "viz.tag" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The selector of a component's pods (immutable in a Deployment: never add to it). */}}
{{- define "viz.selector" -}}
sinew.dev/extension: viz
sinew.dev/viz-component: {{ .component }}
{{- end -}}

{{/* Pod-template labels and annotations: (dict "root" $ "component" c "annotations" a). Neither pod is meshed:
     sinew-viz speaks mTLS to the proxies' tap port itself, and Prometheus scrapes their plaintext admin port. */}}
{{- define "viz.podMetadata" -}}
labels:
  {{- include "viz.selector" . | nindent 2 }}
  app.kubernetes.io/name: {{ .component }}
  app.kubernetes.io/part-of: sinew-viz
  app.kubernetes.io/version: {{ include "viz.tag" .root | quote }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  sinew.dev/inject: disabled
  {{- with .annotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* A container's security context: a fixed non-root user, nothing writable but the volumes. */}}
{{- define "viz.securityContext" -}}
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "viz.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
