package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// applyFlagSources gives the flags of cmd that the command line left unset their values from the environment and
// from a TOML config file. It runs after cobra parsed the command line (as cmd's PreRunE) and sees every flag of
// cmd at that time, whoever added it.
//
// Precedence, highest first: the command line, the environment, the config file, the flag's built-in default.
//
// Environment: the flag --NAME is read from the variable envPrefix_NAME, NAME upper-cased with '-' (and any other
// character that is not a letter or digit) turned into '_': with envPrefix "ACTORMESH", --data-dir is
// ACTORMESH_DATA_DIR. An empty variable counts as unset. A repeatable flag (a pflag.SliceValue such as StringArray
// or StringSlice) takes a comma-separated list; blanks around the items are trimmed and empty items dropped. The
// help flag is never read from the environment.
//
// Config file: the flag configFlag (if cmd has it; "" for none), itself taken from the command line or the
// environment (ACTORMESH_CONFIG), names a TOML file whose top-level keys are flag names, e.g.
//
//	listen = "127.0.0.1:30700"
//	data-dir = "/var/lib/actormesh"
//	bootnode = ["<id>@192.0.2.1:30700", "<id>@192.0.2.2:30700"]
//	max-inbound = 50
//
// Values are strings, integers, floats or booleans, given to the flag as their text (durations are strings such
// as "10s"); a repeatable flag takes an array of them or a single one. Keys set on the command line or in the
// environment are ignored. Relative paths in values are relative to the working directory, not to the file.
//
// Every error (a bad environment value, a missing or malformed file, an unknown key, a value the flag rejects) is a
// usageError naming its source, so the command exits with exitUsage.
func applyFlagSources(cmd *cobra.Command, envPrefix string, configFlag string) error {
	flags := cmd.Flags()
	fromCommandLine := map[string]bool{}
	flags.Visit(func(f *pflag.Flag) { fromCommandLine[f.Name] = true })

	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || fromCommandLine[f.Name] || f.Name == "help" {
			return
		}
		name := envName(envPrefix, f.Name)
		v := os.Getenv(name)
		if v == "" {
			return
		}
		var values []string
		if _, ok := f.Value.(pflag.SliceValue); ok {
			for item := range strings.SplitSeq(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					values = append(values, item)
				}
			}
		} else {
			values = []string{v}
		}
		if e := setFlag(flags, f, values); e != nil {
			err = usagef("environment variable %s=%q: --%s wants %s: %w", name, v, f.Name, flagTypeName(f), e)
			return
		}
		setFlagSource(cmd, f.Name, "environment variable "+name)
	})
	if err != nil || configFlag == "" {
		return err
	}
	cf := flags.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	if !fromCommandLine[configFlag] {
		path += " (from " + envName(envPrefix, configFlag) + ")"
	}
	return applyConfigFile(flags, cf.Value.String(), path, configFlag, func(flag string) {
		setFlagSource(cmd, flag, "config file "+path)
	})
}

// flagSourcePrefix prefixes the command's annotations that name where a flag's value came from, when not from the
// command line (setFlagSource).
const flagSourcePrefix = "flag-source:"

// setFlagSource records that flag's value came from source (an environment variable or a config file), so that
// the command's later check of the value names it (withFlagSource).
func setFlagSource(cmd *cobra.Command, flag, source string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[flagSourcePrefix+flag] = source
}

// withFlagSource prefixes a usage error about a flag (its text starts with --name) with where the flag's value
// came from, when that was not the command line: `config file node.toml: --listen "5": want host:port`.
func withFlagSource(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if !strings.HasPrefix(msg, "--") {
		return err
	}
	name := msg[2:]
	if i := strings.IndexFunc(name, func(r rune) bool { return r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) }); i >= 0 {
		name = name[:i]
	}
	if source, ok := cmd.Annotations[flagSourcePrefix+name]; ok {
		return usagef("%s: %w", source, err)
	}
	return err
}

// applyConfigFile sets the flags named in the TOML file file that neither the command line nor the environment set
// (those are Changed already). The key configFlag may not appear in the file. name is how errors refer to the file.
func applyConfigFile(flags *pflag.FlagSet, file, name, configFlag string, set func(flag string)) error {
	data, err := readBounded(file, nil, 1<<20)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return usagef("config file %s: %w", name, err)
	}
	values := map[string]any{}
	md, err := toml.Decode(string(data), &values)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return usagef("config file %s: line %d: %s", name, pe.Position.Line, pe.Message)
		}
		return usagef("config file %s: %w", name, err)
	}
	seen := map[string]bool{}
	for _, k := range md.Keys() { // file order, so the first bad key is reported
		key := k[0]
		if seen[key] {
			continue
		}
		seen[key] = true
		f := flags.Lookup(key)
		if f == nil || key == "help" {
			return usagef("config file %s: unknown key %q: there is no flag --%s", name, key, key)
		}
		if key == configFlag {
			return usagef("config file %s: key %q: a config file cannot name another one", name, key)
		}
		if f.Changed { // by the command line or the environment
			continue
		}
		v := values[key]
		texts, err := tomlTexts(v, isSliceFlag(f))
		if err == nil {
			err = setFlag(flags, f, texts)
		}
		if err != nil {
			return usagef("config file %s: key %q = %s: --%s wants %s: %w", name, key, tomlString(v), key,
				flagTypeName(f), err)
		}
		set(key)
	}
	return nil
}

// envName is the environment variable of the flag named flag: PREFIX_FLAG_NAME.
func envName(prefix, flag string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, flag)
	if prefix == "" {
		return name
	}
	return prefix + "_" + name
}

// isSliceFlag tells whether f is repeatable (its value is a list).
func isSliceFlag(f *pflag.Flag) bool {
	_, ok := f.Value.(pflag.SliceValue)
	return ok
}

// setFlag sets f to values as if given on the command line: one value for a plain flag, each in turn for a
// repeatable one (which replace its default; none at all empties it). f is marked Changed. The error is the
// flag's own reason to reject a value (strconv's "invalid syntax"), the caller names the flag and the value.
func setFlag(flags *pflag.FlagSet, f *pflag.Flag, values []string) error {
	if len(values) == 0 {
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return errors.New("no value")
		}
		if err := sv.Replace(nil); err != nil {
			return err
		}
		f.Changed = true
		return nil
	}
	for _, v := range values {
		if err := flags.Set(f.Name, v); err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) {
				err = ne.Err
			} else if ive := (*pflag.InvalidValueError)(nil); errors.As(err, &ive) && ive.Unwrap() != nil {
				err = ive.Unwrap()
			}
			if len(values) > 1 {
				err = fmt.Errorf("%q: %w", v, err)
			}
			return err
		}
	}
	return nil
}

// tomlTexts turns a decoded TOML value into the text of flag values: a scalar is one value, an array (allowed only
// when list is true) one per element.
func tomlTexts(v any, list bool) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		s, err := tomlScalarText(v)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	if !list {
		return nil, errors.New("got an array, the flag takes one value")
	}
	texts := make([]string, 0, len(arr))
	for _, e := range arr {
		s, err := tomlScalarText(e)
		if err != nil {
			return nil, fmt.Errorf("array element %s: %w", tomlString(e), err)
		}
		texts = append(texts, s)
	}
	return texts, nil
}

// tomlScalarText is the text of a TOML string, integer, float or boolean.
func tomlScalarText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case time.Time:
		return "", errors.New("got a TOML date/time; quote it as a string")
	case map[string]any:
		return "", errors.New("got a table")
	case []any, []map[string]any:
		return "", errors.New("got a nested array")
	}
	return "", fmt.Errorf("unsupported TOML value of type %T", v)
}

// tomlString shows a decoded TOML value for an error message, strings quoted.
func tomlString(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = tomlString(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return "{table}"
	case time.Time:
		return v.Format("2006-01-02T15:04:05.999999999")
	}
	return fmt.Sprint(v)
}

// flagTypeName describes the values f takes, for error messages.
func flagTypeName(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean (true or false)"
	case "duration":
		return `a duration such as "10s"`
	case "stringArray", "stringSlice":
		return "a list of strings"
	default:
		return "a value of type " + t
	}
}
