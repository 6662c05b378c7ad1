package main

import (
	"github.com/spf13/cobra"
)

// newGenDocsCmd is a hidden command that writes docs/cli.md (go generate).
func newGenDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs FILE.md",
		Hidden: true,
		Args:   wantArgs(1, 1, "the file to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return nil
		},
	}
}
