// Package oci is keel's image side of the build: image references, the
// local image cache (an OCI image layout), resolving and pulling images
// into it. It knows nothing of the YAML: pkg/spec turns a YAML entry plus
// its image's config into a bundle's config.json and runtime.json.
//
// The bundle layout itself lives in the bundle subpackage, which PID 1
// imports without any of the registry code here.
package oci
