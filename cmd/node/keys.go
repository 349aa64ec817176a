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
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key file (not the key of a running node)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// keygen creates a new identity at path and prints its NodeID. It refuses to replace an existing file unless force
// is set, and even then the key of a running node (replaceableKey). The key file appears whole or not at all: a
// new one through session's exclusive save (a node starting meanwhile found an empty placeholder, "bad key file",
// and a keygen that crashed left it), a replaced one through an atomic rename.
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
		err := id.SaveNew(path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("key file %s already exists; refusing to overwrite it (use --force to replace it)", path)
		}
		if err != nil {
			return err
		}
	} else {
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			return fmt.Errorf("key file %s is a directory", path)
		}
		release, err := replaceableKey(path)
		if err != nil {
			return err
		}
		defer release()
		if err := id.Save(path); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(stdout, id.NodeID())
	return err
}

// replaceableKey takes the locks a running node holds on the key file at path (lockKeyFile) and, if the file lies
// in a data directory (one holding a LOCK file), on the directory (lockDataDir), until release. It fails if a node
// holds either: the node would run on with the old identity, and come back as another node at its next start.
// Holding them while the key is replaced keeps a node from starting on them meanwhile.
func replaceableKey(path string) (release func(), err error) {
	var held []func()
	release = func() {
		for _, r := range held {
			r()
		}
	}
	refuse := func(err error) (func(), error) {
		release()
		return nil, fmt.Errorf("refusing to replace key file %s: %w; stop that node first", path, err)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(filepath.Join(dir, dataDirLockFile)); err == nil {
		r, err := lockDataDir(dir)
		if err != nil {
			return refuse(err)
		}
		held = append(held, r)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		r, err := lockKeyFile(path)
		if err != nil {
			return refuse(err)
		}
		held = append(held, r)
	}
	return release, nil
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
