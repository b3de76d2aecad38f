{{/* Labels every sinew CRD carries; `sinew uninstall` and `sinew check` find the CRDs by them. */}}
{{- define "sinew-crds.labels" -}}
app.kubernetes.io/part-of: sinew
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A Kubernetes label selector (matchLabels / matchExpressions). */}}
{{- define "sinew-crds.labelSelector" -}}
type: object
description: {{ .description | quote }}
properties:
  matchLabels:
    type: object
    additionalProperties:
      type: string
  matchExpressions:
    type: array
    items:
      type: object
      required: [key, operator]
      properties:
        key:
          type: string
        operator:
          type: string
          enum: [In, NotIn, Exists, DoesNotExist]
        values:
          type: array
          items:
            type: string
      x-kubernetes-validations:
      - rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0"
        message: "operators In and NotIn need values; Exists and DoesNotExist take none"
x-kubernetes-map-type: atomic
{{- end -}}

{{/* A network: a CIDR with optional exceptions inside it. */}}
{{- define "sinew-crds.network" -}}
type: object
required: [cidr]
properties:
  cidr:
    type: string
    description: An IPv4 or IPv6 network in CIDR notation (10.0.0.0/8, fd00::/8); a bare address means that one host.
    maxLength: 64
    pattern: {{ include "sinew-crds.cidrPattern" . | quote }}
  except:
    type: array
    description: Networks inside cidr that do not match.
    maxItems: 64
    items:
      type: string
      maxLength: 64
      pattern: {{ include "sinew-crds.cidrPattern" . | quote }}
{{- end -}}

{{- define "sinew-crds.cidrPattern" -}}
^(([0-9]{1,3}\.){3}[0-9]{1,3}(/([0-9]|[12][0-9]|3[0-2]))?|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?)$
{{- end -}}

{{/* The inbound access policies, shared by Server.accessPolicy and the install's default policy. */}}
{{- define "sinew-crds.accessPolicies" -}}
[all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit]
{{- end -}}
