// Package engine runs the addons' database servers — PostgreSQL, Redis
// and MySQL (MariaDB) — as runtime workloads, and dumps, restores,
// snapshots and checks them, for the addons service.
//
// # How an addon runs
//
// One addon is one workload of a pkg/runtime Driver, made by
// Engine.Spec: the process driver runs the host's server binaries in its
// sandbox, the docker driver an image (Addon.Image, else DefaultImage:
// the official image) with Slipway's own command line (initdb or
// mariadb-install-db on the first start, then the server), so an image
// only has to provide the binaries. The workload carries the labels
// LabelAddon, LabelProject and LabelRole (RoleServer, or RoleVerify for a
// throwaway verification instance) and the name WorkloadName.
//
// It sees its data at DataMount — the host directory Addon.DataDir on
// the process driver, the named volume Addon.Volume on docker — and the
// host's socket directory, Addon.RunDir, at RunMount (Spec creates the
// host directories when missing). The server listens on a unix socket in
// RunMount (world-connectable: every connection authenticates with a
// password) and on TCP (Spec port "db"), which the driver publishes on
// the host's loopback (runtime.Status.Ports) for the operator; workloads
// cannot reach the host's loopback (a process-driver sandbox has a
// private network), so a linked workload gets the socket directory
// mounted read-only (LinkMount: LinkRoot/<Addon.ID>) and Credentials
// gives values that use it. connect(2) works on a read-only mount (see
// TestLinkedWorkload).
//
// On docker the server runs as Addon.RunAs (DefaultRunAs: 999:999, the
// official images' postgres, redis and mysql users; runtime.Spec.User).
// Its data is the named volume Addon.Volume (ServerVolume, VerifyVolume),
// which PrepareData creates and gives to that user before each start and
// RemoveData removes; the host never reads the engine's volume directory
// (see volume.go). RunDir stays a bind mount given to the user: linked
// workloads and the host reach the socket in it; so do the TLS files
// (Addon.TLSDir, read-only; see tls.go).
//
// # What Slipway does to a running addon
//
// Everything — Ready, Dump, Restore, Snapshot, Check — is Driver.Exec of
// the engine's own tools inside the server's workload, over the socket,
// as the admin user (its password in the Exec's environment, never on a
// command line): output streams to the io.Writer, input from the
// io.Reader. A tool that fails is a *ToolError with its exit status and
// the last lines of its error output, passwords removed. WaitReady polls
// Ready.
//
//   - PostgreSQL: Dump is pg_dump -Fc; Restore is pg_restore --clean
//     --if-exists --no-owner --role=<User> --single-transaction
//     --exit-on-error, all or nothing: a failed or interrupted restore
//     leaves the previous data. Snapshot is pg_basebackup's tar (WAL
//     included).
//   - Redis: Dump and Snapshot are the RDB file; Restore checks the RDB
//     (redis-check-rdb), then loads it without a restart (DEBUG RELOAD),
//     keeping the previous file until the load succeeded (see redis).
//   - MySQL: Dump is mariadb-dump's SQL; Restore refuses a dump that is
//     incomplete or does not load into a scratch database before it
//     touches the live one, keeps a dump of the live data while it
//     replaces it and loads that back if the replacement fails (see
//     mysql.go); views, triggers and routines are given to the app user.
//     Snapshot is mariadb-backup's copy, prepared, as a tar.
//
// Restores need no stopped server, and the addons service need not copy
// the data directory aside (it may). A restore interrupted half-way — its
// context cancelled, Slipway killed (a tool run by Exec then sees its
// input end, which no engine takes for a complete dump) — has failed and
// is undone: by PostgreSQL's transaction at once, and for Redis and
// MySQL by the next Restore or the next start of the server (Stop,
// Remove, Start from Spec), whichever comes first. After a crash during a
// restore, restart the server.
//
// # Snapshots
//
// Snapshot is taken while the server runs. RestoreSnapshot works with the
// server STOPPED: the caller stops and removes the workload, calls
// RestoreSnapshot, and starts a workload from Spec again. It unpacks next
// to the current data (the host's DataDir on the process driver; on
// docker, in a helper container that mounts the volume) and swaps only
// once the snapshot is complete and looks right, so a failure leaves the
// previous data in place. The swap is two renames (the data aside as
// <name>.old, the new data in its place); a crash between them would
// leave no data directory, and the server's next start would initialise
// an empty one, so PrepareData settles it before every start: the
// previous data is moved back, or, when the swap completed, its copy
// removed (see recoverSwap).
//
// # Verification
//
// A verification instance is an Addon with Verify set, the source's ID and
// credentials and fresh DataDir (docker: Volume) and RunDir: PrepareData,
// start it, WaitReady, Restore the dump into it, Check it and compare with
// the Check taken of the source when the backup was made (Check.Equal,
// Check.Diff), then stop and remove it and delete its data (RemoveData)
// and directories. For a snapshot, RestoreSnapshot into the fresh data
// comes first, and the instance starts on it. Its Spec has the
// verify role, no TCP port and a name of its own (WorkloadName and a random
// suffix), so that several can run at once.
//
// # Resources
//
// With a memory limit (Addon.Resources.MemoryMB) each server sizes itself
// to fit: PostgreSQL's shared buffers a quarter of it, InnoDB's buffer pool
// a third, Redis's maxmemory three quarters (noeviction: a full Redis
// refuses writes instead of being killed).
//
// # Credentials
//
// GeneratePassword and GenerateUser make the credentials (crypto/rand);
// the addons service stores them (encrypted) and passes them in Addon.
// Names and passwords must be of their alphabet (Spec refuses others), and
// so must a custom DBName.
//
// Credentials gives a linked workload (the socket directory mounted at
// LinkPath) Northflank's keys, split into secrets (passwords, URIs with
// passwords) and envs. HOST is the socket directory, PORT the server's
// port (which names PostgreSQL's socket file), SOCKET the socket file
// itself. The URIs are forms that reach a socket:
//
//   - PostgreSQL: POSTGRES_URI is postgresql://user:pass@/db?host=<dir>&port=5432
//     (libpq and what builds on it, psql, pgx); libpq also takes HOST as
//     a host; JDBC_POSTGRES_URI uses junixsocket's socket factory.
//   - Redis: REDIS_MASTER_URL is unix://:pass@<dir>/redis.sock (go-redis,
//     redis-py); USERNAME is "default".
//   - MySQL: MYSQL_URI is mysql://user:pass@localhost/db?socket=<file>;
//     JDBC_MYSQL_URI uses MariaDB Connector/J's localSocket; the mariadb
//     and mysql clients take --socket=$SOCKET.
//
// The TCP port, published on the host's loopback, is for the operator
// ("external access"); workloads never use it. With Addon.TLS it takes
// TLS only (see tls.go): Credentials then add TLS_CA_CERT, and
// ExternalCredentials the verifying EXTERNAL_* URIs.
package engine
