package cli

import (
	"fmt"

	"github.com/sinewmesh/sinew/charts"
	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/internal/names"
)

// decodeInstalled decodes installed values (chartcmd.InstalledValues) over the chart's defaults, skipping keys this
// CLI's chart does not have (an older or newer CLI may have written them).
func decodeInstalled(stored map[string]any) (*charts.ControlPlaneValues, error) {
	vals, err := charts.DefaultValues(charts.ControlPlane)
	if err != nil {
		return nil, err
	}
	chartcmd.Merge(vals, stored)
	var v charts.ControlPlaneValues
	if err := charts.DecodeValuesIgnoringUnknown(vals, &v); err != nil {
		return nil, fmt.Errorf("ConfigMap %s key values: %w", names.ConfigMap, err)
	}
	return &v, nil
}
