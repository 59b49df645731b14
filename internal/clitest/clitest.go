// Package clitest holds what the tests of the two command lines share.
package clitest

import "github.com/spf13/cobra"

// CommandPaths lists every command under root as the words that name it
// (nil for root itself), depth first, leaving out cobra's help command.
func CommandPaths(root *cobra.Command) [][]string {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if sub.Name() != "help" {
				walk(sub, append(append([]string{}, path...), sub.Name()))
			}
		}
	}
	walk(root, nil)
	return paths
}
