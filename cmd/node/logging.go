package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// logLevels are the values --log-level accepts.
var logLevels = map[string]zerolog.Level{
	"debug": zerolog.DebugLevel,
	"info":  zerolog.InfoLevel,
	"warn":  zerolog.WarnLevel,
	"error": zerolog.ErrorLevel,
}

// newLogger builds the logger of --log-level and --log-format: human-readable console lines (the format of
// actors.ConsoleLogger, written to w and colored only on a terminal) or one JSON object per line.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, ok := logLevels[level]
	if !ok {
		return zerolog.Nop(), usagef("--log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "console":
		cw := zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}
		return zerolog.New(cw).Level(lvl).With().Timestamp().Logger(), nil
	case "json":
		return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
	default:
		return zerolog.Nop(), usagef("--log-format %q: want console or json", format)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
