{{/*
prometheus.yml. The sinew-proxy job keeps each meshed pod's proxy admin port (named sinew-admin, plaintext and
never captured) and gives every series the target labels of the label contract in docs/observability/viz.md:
namespace, pod, and deployment from the injector's sinew.dev/proxy-deployment label. With discovery "http" the
targets come from an http_sd endpoint that sets the same __meta_kubernetes_* labels, so the relabeling is the same.
*/}}
{{- define "viz.prometheusConfig" -}}
{{- $p := .Values.prometheus -}}
global:
  scrape_interval: {{ $p.scrapeInterval }}
  scrape_timeout: {{ $p.scrapeInterval }}
  evaluation_interval: {{ $p.scrapeInterval }}
scrape_configs:
- job_name: sinew-proxy
  {{- if eq $p.discovery "kubernetes" }}
  kubernetes_sd_configs:
  - role: pod
  {{- else }}
  http_sd_configs:
  - url: {{ default (printf "http://sinew-viz.%s.svc.%s:8084/api/prometheus/targets" (include "viz.namespace" .) .Values.clusterDomain) $p.httpSDURL | quote }}
    refresh_interval: {{ $p.scrapeInterval }}
  {{- end }}
  relabel_configs:
  - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: sinew-admin, action: keep}
  - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
  - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
  - {source_labels: [__meta_kubernetes_pod_label_sinew_dev_proxy_deployment], target_label: deployment}
{{- end -}}
