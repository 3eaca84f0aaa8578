// Package addons is the addons service: databases (PostgreSQL, Redis,
// MySQL/MariaDB) run as workloads of the runtime driver, their
// credentials, backups (dumps and snapshots) that are verified by
// restoring them into a throwaway instance, restores that keep the
// previous data when they fail, and backup schedules.
//
// How a type's server is started, dumped, restored and checked is the
// engine package's (services/addons/engine); this package decides when,
// records it, and recovers whatever a crash interrupted when it starts.
package addons
