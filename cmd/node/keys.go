package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/actormesh/actormesh/session"
)

func newKeygenCmd() *cobra.Command {
	var path string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --key PATH [--force]",
		Short: "Create a node identity (ed25519 key file, mode 0600) and print its NodeID",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return keygen(cmd.OutOrStdout(), path, force)
		}),
	}
	cmd.Flags().StringVar(&path, "key", "", "path of the key file to create (required)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing key file")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// keygen creates a new identity at path and prints its NodeID. It refuses to replace an existing file unless
// force is set.
func keygen(stdout io.Writer, path string, force bool) error {
	if path == "" {
		return usagef("--key must not be empty")
	}
	id, err := session.GenerateIdentity()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	if !force {
		// Claim the name atomically, so that two concurrent keygens cannot both "create" the same file;
		// Save then replaces the empty placeholder.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("key file %s already exists; refusing to overwrite it (use --force to replace it)", path)
		}
		if err != nil {
			return fmt.Errorf("create key file: %w", err)
		}
		f.Close()
	} else if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("key file %s is a directory", path)
	}
	if err := id.Save(path); err != nil {
		if !force {
			os.Remove(path)
		}
		return err
	}
	_, err = fmt.Fprintln(stdout, id.NodeID())
	return err
}

func newIDCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "id --key PATH",
		Short: "Print the NodeID of a key file",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			id, err := loadIdentity(path)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), id.NodeID())
			return err
		}),
	}
	cmd.Flags().StringVar(&path, "key", "", "path of the key file (required)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// loadIdentity loads a key file and turns the failures into messages that say what to do.
func loadIdentity(path string) (*session.Identity, error) {
	if path == "" {
		return nil, usagef("--key must not be empty")
	}
	id, err := session.LoadIdentity(path)
	if err != nil {
		return nil, keyFileError(path, err)
	}
	return id, nil
}

func keyFileError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no key file at %s (create one with: node keygen --key %s)", path, path)
	case errors.Is(err, session.ErrBadKeyFile):
		return fmt.Errorf("%w (key files are made by: node keygen --key PATH)", err)
	default:
		return err // permissions (with the chmod hint), I/O errors
	}
}
