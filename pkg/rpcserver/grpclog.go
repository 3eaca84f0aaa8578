package rpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"google.golang.org/grpc/grpclog"
)

// LogTo routes what gRPC and grpc-gateway log on their own (through
// grpclog, which otherwise writes unstructured lines to stderr) into log,
// as records with the message in "msg" and "source" set to "grpc". Their
// informational lines, connection state chatter, are debug records;
// warnings and errors keep their level. It replaces a process-wide logger,
// so the process calls it once at start, before any gRPC activity.
func LogTo(log *slog.Logger) {
	grpclog.SetLoggerV2(grpcLogger{log: log})
}

// grpcLogger is a grpclog.LoggerV2 writing to a slog.Logger.
type grpcLogger struct{ log *slog.Logger }

var _ grpclog.LoggerV2 = grpcLogger{}

func (l grpcLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg, "source", "grpc")
}

// Info implements grpclog.LoggerV2.
func (l grpcLogger) Info(args ...any) { l.emit(slog.LevelDebug, fmt.Sprint(args...)) }

// Infoln implements grpclog.LoggerV2.
func (l grpcLogger) Infoln(args ...any) { l.emit(slog.LevelDebug, sprintln(args...)) }

// Infof implements grpclog.LoggerV2.
func (l grpcLogger) Infof(format string, args ...any) {
	l.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}

// Warning implements grpclog.LoggerV2.
func (l grpcLogger) Warning(args ...any) { l.emit(slog.LevelWarn, fmt.Sprint(args...)) }

// Warningln implements grpclog.LoggerV2.
func (l grpcLogger) Warningln(args ...any) { l.emit(slog.LevelWarn, sprintln(args...)) }

// Warningf implements grpclog.LoggerV2.
func (l grpcLogger) Warningf(format string, args ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}

// Error implements grpclog.LoggerV2.
func (l grpcLogger) Error(args ...any) { l.emit(slog.LevelError, fmt.Sprint(args...)) }

// Errorln implements grpclog.LoggerV2.
func (l grpcLogger) Errorln(args ...any) { l.emit(slog.LevelError, sprintln(args...)) }

// Errorf implements grpclog.LoggerV2.
func (l grpcLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelError, fmt.Sprintf(format, args...))
}

// Fatal logs and exits, as grpclog's contract requires.
func (l grpcLogger) Fatal(args ...any) { l.emit(slog.LevelError, fmt.Sprint(args...)); os.Exit(1) }

// Fatalln logs and exits, as grpclog's contract requires.
func (l grpcLogger) Fatalln(args ...any) { l.emit(slog.LevelError, sprintln(args...)); os.Exit(1) }

// Fatalf logs and exits, as grpclog's contract requires.
func (l grpcLogger) Fatalf(format string, args ...any) {
	l.emit(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// V reports whether verbosity level v is logged: gRPC's verbose lines are
// debug records, logged when the logger takes debug records.
func (l grpcLogger) V(v int) bool {
	return v <= 0 || l.log.Enabled(context.Background(), slog.LevelDebug)
}

// sprintln is fmt.Sprintln without its newline.
func sprintln(args ...any) string {
	s := fmt.Sprintln(args...)
	return s[:len(s)-1]
}
