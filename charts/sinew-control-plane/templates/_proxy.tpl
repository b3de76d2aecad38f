{{/*
The injected pod, as docs/architecture/kubernetes.md ("The injected pod") defines it, for the control plane's own
pods. It must produce what controlplane/inject produces for the same pod and settings (a test compares them).

Every template here takes (dict "root" $ "component" <c> "deployment" <d> "annotations" <the pod template's
annotations>): the config.sinew.dev/* annotations override the chart's proxy values the same way they override
the injector's, the most specific (the pod's) winning.
*/}}

{{/* An override: the pod annotation config.sinew.dev/<key> if set, else the default. (dict "ann" a "key" k "default" d) */}}
{{- define "sinew.proxy.setting" -}}
{{- $v := index (default dict .ann) (printf "config.sinew.dev/%s" .key) -}}
{{- if kindIs "invalid" $v -}}{{ .default }}{{- else -}}{{ $v }}{{- end -}}
{{- end -}}

{{- define "sinew.proxy.native" -}}
{{- $v := include "sinew.proxy.setting" (dict "ann" .annotations "key" "proxy-native-sidecar" "default" (toString .root.Values.proxy.nativeSidecar)) -}}
{{- if eq (lower $v) "false" -}}false{{- else -}}true{{- end -}}
{{- end -}}

{{- define "sinew.proxy.version" -}}
{{- $def := default (include "sinew.tag" .root) .root.Values.proxy.image.version -}}
{{- include "sinew.proxy.setting" (dict "ann" .annotations "key" "proxy-version" "default" $def) -}}
{{- end -}}

{{/* Labels the injector adds to a meshed pod. */}}
{{- define "sinew.proxy.labels" -}}
sinew.dev/control-plane-ns: {{ include "sinew.namespace" .root }}
sinew.dev/workload-ns: {{ .root.Release.Namespace }}
sinew.dev/proxy-deployment: {{ .deployment }}
{{- end -}}

{{/* Annotations the injector adds to a meshed pod. */}}
{{- define "sinew.proxy.annotations" -}}
sinew.dev/created-by: {{ printf "sinew/%s %s" (ternary "cli" "helm" (eq .root.Release.Service "sinew")) (include "sinew.tag" .root) | quote }}
sinew.dev/proxy-version: {{ include "sinew.proxy.version" . | quote }}
sinew.dev/trust-root-sha256: {{ include "sinew.trustAnchors" .root | sha256sum }}
{{- end -}}

{{/* A port list in the injector's order: by first port (it also merges overlapping ranges, which this does not). */}}
{{- define "sinew.proxy.sortPorts" -}}
{{- $items := list -}}
{{- range (splitList "," .) -}}
{{- $p := trim . -}}
{{- if $p -}}
{{- $items = append $items (printf "%05d|%s" (int (first (splitList "-" $p))) $p) -}}
{{- end -}}
{{- end -}}
{{- $out := list -}}
{{- range (sortAlpha $items) -}}
{{- $out = append $out (last (splitList "|" .)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* The proxy's (and the init container's) resources, from the values and the annotations. */}}
{{- define "sinew.proxy.resources" -}}
{{- $ann := .annotations -}}
{{- $v := .root.Values -}}
{{- $cpuReq := include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-cpu-request" "default" $v.proxy.resources.cpu.request) -}}
{{- $cpuLim := include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-cpu-limit" "default" $v.proxy.resources.cpu.limit) -}}
{{- $memReq := include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-memory-request" "default" $v.proxy.resources.memory.request) -}}
{{- $memLim := include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-memory-limit" "default" $v.proxy.resources.memory.limit) -}}
{{- if or $cpuReq $cpuLim $memReq $memLim }}
resources:
  {{- if or $cpuReq $memReq }}
  requests:
    {{- with $cpuReq }}
    cpu: {{ . | quote }}
    {{- end }}
    {{- with $memReq }}
    memory: {{ . | quote }}
    {{- end }}
  {{- end }}
  {{- if or $cpuLim $memLim }}
  limits:
    {{- with $cpuLim }}
    cpu: {{ . | quote }}
    {{- end }}
    {{- with $memLim }}
    memory: {{ . | quote }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The init container that installs the traffic capture. */}}
{{- define "sinew.proxy.init" -}}
{{- $ann := .annotations -}}
{{- $v := .root.Values -}}
{{- $initImage := include "sinew.proxy.setting" (dict "ann" $ann "key" "init-image" "default" (printf "%s/%s" (trimSuffix "/" $v.image.registry) $v.proxyInit.image.name)) -}}
{{- $initVersion := default (include "sinew.tag" .root) $v.proxyInit.image.version -}}
- name: sinew-init
  image: {{ printf "%s:%s" $initImage $initVersion }}
  imagePullPolicy: {{ include "sinew.proxy.setting" (dict "ann" $ann "key" "image-pull-policy" "default" $v.image.pullPolicy) }}
  args:
  - --inbound-port={{ $v.proxy.ports.inbound }}
  - --outbound-port={{ $v.proxy.ports.outbound }}
  - --proxy-uid={{ include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-uid" "default" $v.proxy.uid) }}
  - --skip-inbound-ports={{ include "sinew.proxy.setting" (dict "ann" $ann "key" "skip-inbound-ports" "default" $v.proxyInit.skipInboundPorts) | include "sinew.proxy.sortPorts" }}
  - --skip-outbound-ports={{ include "sinew.proxy.setting" (dict "ann" $ann "key" "skip-outbound-ports" "default" $v.proxyInit.skipOutboundPorts) | include "sinew.proxy.sortPorts" }}
  - --skip-subnets={{ include "sinew.proxy.setting" (dict "ann" $ann "key" "skip-subnets" "default" $v.proxyInit.skipSubnets) }}
  {{- include "sinew.proxy.resources" . | nindent 2 }}
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      add: [NET_ADMIN, NET_RAW]
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  terminationMessagePolicy: FallbackToLogsOnError
{{- end -}}

{{/* The proxy container; native sidecar or plain container as the settings say. */}}
{{- define "sinew.proxy.container" -}}
{{- $ann := .annotations -}}
{{- $v := .root.Values -}}
{{- $ns := include "sinew.namespace" .root -}}
{{- $td := include "sinew.trustDomain" .root -}}
{{- $cd := .root.Values.clusterDomain -}}
{{- $native := eq (include "sinew.proxy.native" .) "true" -}}
{{- $await := and $native (ne (include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-await" "default" (ternary "enabled" "disabled" $v.proxy.await))) "disabled") -}}
{{- $image := include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-image" "default" (printf "%s/%s" (trimSuffix "/" $v.image.registry) $v.proxy.image.name)) -}}
{{- /* the identity pod's proxy gets its certificate from its own pod: the Service has no ready endpoint before it */ -}}
{{- $identityAddr := printf "sinew-identity.%s.svc.%s.:8080" $ns $cd -}}
{{- if eq .component "identity" }}{{ $identityAddr = "localhost:8080" }}{{ end -}}
{{- $opaque := include "sinew.proxy.setting" (dict "ann" $ann "key" "opaque-ports" "default" $v.proxy.opaquePorts) -}}
{{- $connect := include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-outbound-connect-timeout" "default" $v.proxy.connectTimeout) -}}
{{- $grace := include "sinew.proxy.setting" (dict "ann" $ann "key" "shutdown-grace-period" "default" $v.proxy.shutdownGracePeriod) -}}
{{- /* a plain container gets SIGTERM with the app and keeps accepting a while (controlplane/inject PlainSidecarDrainDelay) */ -}}
{{- $drain := include "sinew.proxy.setting" (dict "ann" $ann "key" "shutdown-drain-delay" "default" (ternary "" "5s" $native)) -}}
- name: sinew-proxy
  image: {{ printf "%s:%s" $image (include "sinew.proxy.version" .) }}
  imagePullPolicy: {{ include "sinew.proxy.setting" (dict "ann" $ann "key" "image-pull-policy" "default" $v.image.pullPolicy) }}
  {{- if $native }}
  restartPolicy: Always
  {{- end }}
  env:
  - name: _pod_name
    valueFrom:
      fieldRef:
        apiVersion: v1
        fieldPath: metadata.name
  - name: _pod_ns
    valueFrom:
      fieldRef:
        apiVersion: v1
        fieldPath: metadata.namespace
  - name: _pod_sa
    valueFrom:
      fieldRef:
        apiVersion: v1
        fieldPath: spec.serviceAccountName
  - name: SINEW_PROXY_MODE
    value: transparent
  - name: SINEW_PROXY_WORKLOAD
    value: $(_pod_ns)/$(_pod_name)
  - name: SINEW_PROXY_LOG_LEVEL
    value: {{ include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-log-level" "default" $v.proxy.logLevel) | quote }}
  - name: SINEW_PROXY_LOG_FORMAT
    value: {{ include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-log-format" "default" $v.proxy.logFormat) | quote }}
  {{- with $opaque }}
  - name: SINEW_PROXY_OPAQUE_PORTS
    value: {{ . | quote }}
  {{- end }}
  {{- with $connect }}
  - name: SINEW_PROXY_CONNECT_TIMEOUT
    value: {{ . | quote }}
  {{- end }}
  {{- with $grace }}
  - name: SINEW_PROXY_SHUTDOWN_GRACE_PERIOD
    value: {{ . | quote }}
  {{- end }}
  {{- with $drain }}
  - name: SINEW_PROXY_SHUTDOWN_DRAIN_DELAY
    value: {{ . | quote }}
  {{- end }}
  - name: SINEW_PROXY_IDENTITY_LOCAL_NAME
    value: {{ printf "spiffe://%s/ns/$(_pod_ns)/sa/$(_pod_sa)" $td | quote }}
  - name: SINEW_PROXY_IDENTITY_TOKEN_FILE
    value: /var/run/secrets/sinew.dev/serviceaccount/token
  - name: SINEW_PROXY_IDENTITY_TRUST_ANCHORS
    value: |
      {{- include "sinew.trustAnchors" .root | trim | nindent 6 }}
  - name: SINEW_PROXY_IDENTITY_SVC_ADDR
    value: {{ $identityAddr | quote }}
  - name: SINEW_PROXY_DESTINATION_SVC_ADDR
    value: {{ printf "sinew-dst.%s.svc.%s.:8086" $ns $cd | quote }}
  - name: SINEW_PROXY_POLICY_SVC_ADDR
    value: {{ printf "sinew-policy.%s.svc.%s.:8090" $ns $cd | quote }}
  - name: SINEW_PROXY_DEFAULT_INBOUND_POLICY
    value: {{ include "sinew.proxy.setting" (dict "ann" $ann "key" "default-inbound-policy" "default" $v.defaultInboundPolicy) | quote }}
  ports:
  - name: sinew-proxy
    containerPort: {{ $v.proxy.ports.inbound }}
    protocol: TCP
  - name: sinew-admin
    containerPort: {{ $v.proxy.ports.admin }}
    protocol: TCP
  - name: sinew-tap
    containerPort: {{ $v.proxy.ports.tap }}
    protocol: TCP
  {{- if $await }}
  startupProbe:
    httpGet:
      path: /ready
      port: {{ $v.proxy.ports.admin }}
    periodSeconds: 1
    failureThreshold: 120
  {{- end }}
  livenessProbe:
    httpGet:
      path: /live
      port: {{ $v.proxy.ports.admin }}
    initialDelaySeconds: 10
  readinessProbe:
    httpGet:
      path: /ready
      port: {{ $v.proxy.ports.admin }}
    initialDelaySeconds: 2
  {{- include "sinew.proxy.resources" . | nindent 2 }}
  securityContext:
    runAsUser: {{ include "sinew.proxy.setting" (dict "ann" $ann "key" "proxy-uid" "default" $v.proxy.uid) }}
    runAsNonRoot: true
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
  - name: sinew-identity-token
    mountPath: /var/run/secrets/sinew.dev/serviceaccount
    readOnly: true
{{- end -}}

{{/* The pod's init containers: sinew-init, then the proxy when it is a native sidecar. */}}
{{- define "sinew.proxy.initContainers" -}}
{{ include "sinew.proxy.init" . }}
{{- if eq (include "sinew.proxy.native" .) "true" }}
{{ include "sinew.proxy.container" . }}
{{- end }}
{{- end -}}

{{/* The proxy as the pod's first container, when it is not a native sidecar (else nothing). */}}
{{- define "sinew.proxy.containers" -}}
{{- if ne (include "sinew.proxy.native" .) "true" }}
{{ include "sinew.proxy.container" . }}
{{- end }}
{{- end -}}

{{/* The projected ServiceAccount token the proxy (and a controller) proves its identity with. */}}
{{- define "sinew.proxy.volumes" -}}
- name: sinew-identity-token
  projected:
    sources:
    - serviceAccountToken:
        audience: identity.sinew.dev
        expirationSeconds: 86400
        path: token
{{- end -}}
