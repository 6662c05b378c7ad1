package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// cliDocs is docs/cli.md: every command's help, as cobra renders it in
// Markdown, in one page whose links are anchors within it.
func cliDocs(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("# The keel command line\n\n" +
		"This page is generated from the commands' own help (`keel COMMAND --help`) by\n" +
		"`go generate ./cmd/build`; a test fails when it is stale. Do not edit it by hand.\n\n")
	anchor := func(file string) string {
		// keel_cache_ls.md -> #keel-cache-ls, the anchor of "## keel cache ls".
		return "#" + strings.ReplaceAll(strings.TrimSuffix(file, ".md"), "_", "-")
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if err := doc.GenMarkdownCustom(c, &buf, anchor); err != nil {
			t.Fatal(err)
		}
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				walk(sub)
			}
		}
	}
	root := newRootCmd()
	// The version is the build's; the page must not depend on it.
	root.Version = "VERSION"
	walk(root)
	return buf.Bytes()
}

// docs/cli.md says what the commands' help says, so the two cannot drift.
// KEEL_UPDATE_DOCS=1 (go generate ./cmd/build) writes it.
func TestCLIDocs(t *testing.T) {
	got := cliDocs(t)
	file := filepath.Join("..", "..", "docs", "cli.md")
	if os.Getenv("KEEL_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (make it with go generate ./cmd/build)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/cli.md is stale: run go generate ./cmd/build")
	}
}
