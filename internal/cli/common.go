package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lmittmann/tint"
)

// Env looks up an environment variable.
type Env func(string) (string, bool)

// newLogger builds the process's single log handler.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "trace":
		l = slog.LevelDebug - 4
	case "debug":
		l = slog.LevelDebug
	case "", "info":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	case "off":
		return slog.New(slog.DiscardHandler), nil
	case "all":
		return nil, fmt.Errorf("log level %q is not supported: use \"trace\" for the most detail", level)
	default:
		return nil, fmt.Errorf("log level %q is not one of trace, debug, info, warn, error, off", level)
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: l, NoColor: true})), nil
}
