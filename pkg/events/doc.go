// Package events carries Slipway's lifecycle events from the service that
// causes them to the services that react to them, without losing any and
// without inventing any.
//
// A producer writes its state change and the matching [Event] in one
// database transaction ([Enqueue] into the outbox table); a [Relay] later
// publishes the committed rows to the JetStream stream [StreamName] and
// marks them sent. Because publishing happens only after commit, a rolled
// back change never produces an event; because a row is marked sent only
// after JetStream acknowledged it, a crash or a NATS outage only delays
// events. The price is at-least-once publication, which the event id
// neutralises twice: it is the JetStream message id (de-duplicated by the
// stream) and the key of the consumer-side inbox ([MarkProcessed]).
//
// Consumers use [Consume]: a durable pull consumer with explicit acks, so a
// restarted service resumes where it stopped and a failing handler sees the
// event again later.
//
// Live traffic — messages that matter only to whoever listens right now,
// such as log lines for live tails and signals between replicas — goes on
// core NATS under a separate root ([LiveSubject], "slipway-live.>") that
// the stream never captures, so nothing in it is kept for the stream's
// retention.
package events
