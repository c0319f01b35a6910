package cli

import (
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/lmittmann/tint"

	"github.com/promproxy/promproxy/internal/redact"
)

// LevelTrace is below debug: the Kotlin programs' most detailed level.
const LevelTrace = slog.LevelDebug - 4

// newLogger builds the process's one log handler: tint text for people
// (colour only on a terminal), or JSON for log shippers. The level has been
// validated by the config loader.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "trace":
		l = LevelTrace
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	case "off":
		return slog.New(slog.DiscardHandler)
	default:
		l = slog.LevelInfo
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: replaceAttr("TRACE")}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: l, NoColor: !isTerminal(w), ReplaceAttr: replaceAttr("TRC")}))
}

// replaceAttr names the trace level and, as a second line of defence
// behind code that never logs secrets, masks attributes named like one
// and the credentials and query values of URLs in any attribute, the
// message included.
func replaceAttr(trace string) func([]string, slog.Attr) slog.Attr {
	level := traceName(trace)
	return func(groups []string, a slog.Attr) slog.Attr {
		return redact.ReplaceAttr(groups, level(groups, a))
	}
}

// traceName names the trace level, which slog would print as DEBUG-4.
func traceName(name string) func([]string, slog.Attr) slog.Attr {
	return func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey && len(groups) == 0 {
			if lv, ok := a.Value.Any().(slog.Level); ok && lv <= LevelTrace {
				a.Value = slog.StringValue(name)
			}
		}
		return a
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
