package events

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// embeddedReadyTimeout bounds start-up of the in-process server, which
// includes recovering the JetStream store after an unclean stop.
const embeddedReadyTimeout = 30 * time.Second

// StartEmbedded runs a NATS server with JetStream inside this process, for
// the single-process deployment. It stores streams under storeDir, so
// events survive restarts, and listens on no port: only Connect with this
// server reaches it. Call Shutdown (then WaitForShutdown) when done.
func StartEmbedded(storeDir string) (*server.Server, error) {
	if storeDir == "" {
		return nil, errors.New("events: embedded NATS needs a store directory")
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "slipway-embedded",
		JetStream:  true,
		StoreDir:   storeDir,
		DontListen: true,
		NoSigs:     true, // signals belong to the host process
	})
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS: %w", err)
	}
	s.SetLoggerV2(serverLogger{slog.Default().With("component", "nats-server")}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(embeddedReadyTimeout) {
		s.Shutdown()
		return nil, errors.New("events: embedded NATS did not become ready")
	}
	// Start reports a JetStream failure (e.g. an unwritable store) only in
	// the log, leaving a server that would reject every publish.
	if !s.JetStreamEnabled() {
		s.Shutdown()
		return nil, fmt.Errorf("events: embedded NATS could not enable JetStream in %s", storeDir)
	}
	return s, nil
}

// Connect dials url, or the in-process server when embedded is non-nil
// (url is then ignored). The connection never gives up: it starts even if
// the server is not up yet and reconnects forever, quickly, because the
// outbox relay and durable consumers are built to resume after an outage
// rather than to fail. Extra opts are applied last (e.g. nats.Name, auth).
func Connect(url string, embedded *server.Server, opts ...nats.Option) (*nats.Conn, error) {
	log := slog.Default().With("component", "nats")
	base := []nats.Option{
		nats.Name("slipway"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("events: disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("events: reconnected to NATS", "server", nc.ConnectedServerName())
		}),
	}
	if embedded != nil {
		base = append(base, nats.InProcessServer(embedded))
		if url == "" {
			url = nats.DefaultURL // unused for dialing, but must parse
		}
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("events: connect to NATS: %w", err)
	}
	return nc, nil
}

// serverLogger routes the embedded server's log to slog. Its notices are
// start-up chatter, hence debug; Fatalf must not exit the host process.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(format string, v ...any)  {}
