// Package spec compiles a bundle's runtime files from a YAML entry and its
// image's config: config.json (an OCI runtime spec) and runtime.json
// (bundle.Runtime). It sits between pkg/config and the image store, so the
// build reads one way: config -> spec -> image store (pkg/oci) -> outputs.
package spec
