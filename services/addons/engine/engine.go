package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The addon types.
const (
	TypePostgreSQL = "postgresql"
	TypeRedis      = "redis"
	TypeMySQL      = "mysql"
)

// The backup types (Northflank's backupType).
const (
	BackupDump     = "dump"
	BackupSnapshot = "snapshot"
)

// The workload roles (label LabelRole).
const (
	RoleServer = "server"
	RoleVerify = "verify"
	// RoleHelper is a short-lived container that works on an addon's
	// data volume while no server runs on it (docker driver; see
	// volume.go).
	RoleHelper = "helper"
)

// Labels every addon workload carries, so that a restarted addons
// service finds (runtime.Driver.List) what it had started.
const (
	LabelAddon   = "slipway.addon"
	LabelProject = "slipway.project"
	LabelRole    = "slipway.role"
)

// The paths the server workload sees: its data directory (Addon.DataDir)
// and its socket directory (Addon.RunDir).
const (
	DataMount = "/data"
	RunMount  = "/run/addon"
)

// LinkRoot is where a linked workload (a job or a service using the
// addon's credentials) gets each addon's socket directory mounted,
// read-only, at LinkRoot/<Addon.ID> (see LinkMount).
const LinkRoot = "/run/slipway/addons"

// DefaultRunAs is the user the docker driver runs a server as when
// Addon.RunAs is empty: uid and gid 999, the postgres, redis and mysql
// users of the official images.
const DefaultRunAs = "999:999"

// Engine runs one addon type. Every method that acts on a running server
// does it with the engine's own tools, run by Driver.Exec inside the
// server's workload id (whose Spec came from Spec): nothing connects to
// the server from outside its sandbox.
type Engine interface {
	// Type is the addon type: TypePostgreSQL, TypeRedis or TypeMySQL.
	Type() string
	// Info is what GET /addon-types shows for this type on the driver
	// named driver ("process" or "docker").
	Info(driver string) TypeInfo
	// Spec is the server workload of a (or of a throwaway verification
	// instance when a.Verify). Its first start initialises the data
	// directory; later starts use what is there. Spec creates the host
	// directories (a.DataDir on the process driver, a.RunDir, the TLS
	// files) when they are missing, with the modes (and, on docker, the
	// owner) the server needs; on docker the data is the volume a.Volume.
	// PrepareData must have made the data ready first, on either driver
	// (it settles a snapshot restore a crash interrupted).
	Spec(a Addon) (runtime.Spec, error)
	// Ready reports nil when the server of workload id answers (one
	// probe; see WaitReady).
	Ready(ctx context.Context, d runtime.Driver, id string, a Addon) error
	// Dump writes a logical dump of the addon's data to w: pg_dump's
	// custom format, an RDB file, a mariadb-dump SQL script.
	Dump(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error
	// Restore replaces the addon's data with a dump read from r. A dump
	// that cannot be restored leaves the previous data (see each
	// engine's doc for how) and the error says why.
	Restore(ctx context.Context, d runtime.Driver, id string, a Addon, r io.Reader) error
	// Snapshot writes a consistent copy of the data files to w, taken
	// while the server runs (ErrUnsupported for a type without
	// BackupSnapshot in its Info).
	Snapshot(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error
	// RestoreSnapshot replaces a's data with a snapshot read from r. The
	// server must NOT run: the caller stops (and removes) the workload
	// first and starts it from Spec again afterwards. The snapshot is
	// unpacked next to the current data, which is swapped out only once
	// it is complete and looks right, so a failure leaves the previous
	// data; so does a crash in the middle of the swap, once PrepareData
	// has settled it before the next start. On the process driver it
	// works on the host's DataDir; on docker in a helper container of d
	// that mounts the volume (after PrepareData).
	RestoreSnapshot(ctx context.Context, d runtime.Driver, a Addon, r io.Reader) error
	// Check counts what the addon holds (rows of every user table, keys
	// of every Redis database) and describes its schema, so that an
	// instance restored from a backup can be compared with its source.
	Check(ctx context.Context, d runtime.Driver, id string, a Addon) (Check, error)
	// Credentials are the connection values a linked workload gets, under
	// Northflank's keys: secrets (passwords, URIs with passwords) and
	// envs (the rest). Hosts are the socket directory as mounted in a
	// linked workload (LinkMount), not TCP addresses.
	Credentials(a Addon) (secrets, envs map[string]string)
}

// Addon is what an engine needs to know of an addon.
type Addon struct {
	// ID identifies the addon uniquely on this install (the addons
	// service's internal id): workload names and labels, and the path
	// LinkRoot/<ID> in linked workloads, use it. Letters, digits, '-' and
	// '_' only.
	ID string
	// Project is the project's id (a label of the workload).
	Project string
	// Name is the addon's name, for messages.
	Name string
	// Version is the engine version to run, one of Info(driver).Versions
	// ("15" for PostgreSQL, "7.0" for Redis, "10.11" for MariaDB).
	Version string
	// DBName is the database (PostgreSQL, MySQL) the app user owns.
	DBName string
	// AdminUser and AdminPassword are the superuser's; User and Password
	// the app's. Redis has one password for the app (the default user)
	// and AdminUser/AdminPassword for Slipway's own user. Passwords and
	// names must be of GeneratePassword's alphabet (letters, digits, '-'
	// and '_'), as generated ones are.
	AdminUser, AdminPassword string
	User, Password           string
	// DataDir and RunDir are host directories: the data (mounted at
	// DataMount; process driver only) and the socket directory (at
	// RunMount; linked workloads get it read-only at LinkMount).
	DataDir, RunDir string
	// Volume is the docker driver's named volume of the data (mounted at
	// DataMount): ServerVolume(ID) for a server, VerifyVolume for a
	// verification instance. PrepareData creates it, RemoveData removes
	// it. Unused on the process driver.
	Volume string
	// TLSDir is the docker driver's host directory of the server's TLS
	// files (mounted read-only at DockerTLSMount; see tls.go); on the
	// process driver they are in DataDir/tls.
	TLSDir string
	// Driver is the name of the runtime driver that runs it ("process",
	// "docker").
	Driver string
	// Image is the docker driver's image; empty means the type's default
	// (DefaultImage).
	Image string
	// RunAs is the docker driver's "uid:gid" for the server; empty means
	// DefaultRunAs. The volume, RunDir and TLSDir are given to it.
	RunAs string
	// Resources limit the server.
	Resources runtime.Resources
	// Verify marks a throwaway verification instance: its workload has
	// RoleVerify, its own name, and no TCP port.
	Verify bool
	// TLS, when set, makes the server's TCP listener take TLS
	// connections only, with a certificate of TLS.CA (see TLSMount);
	// nil: plain TCP.
	TLS *TLS
}

// TypeInfo is what GET /addon-types shows of a type.
type TypeInfo struct {
	Type        string
	Name        string
	Description string
	// Versions are those this install can run: the server binaries found
	// on the host (process driver) or the images configured (docker).
	// Empty: the type cannot run here.
	Versions []string
	// Major are the major versions of Versions.
	Major []string
	// Features are Northflank's feature flags.
	Features Features
	// BackupTypes are the backup types the engine can take
	// (BackupDump, BackupSnapshot).
	BackupTypes []string
}

// Features are Northflank's addon-type feature flags.
type Features struct {
	BackupsDump    bool
	CustomDBName   bool
	ForkAddon      bool
	ImportDump     bool
	ImportLive     bool
	ScaleReplicas  bool
	TLS            bool
	ExternalAccess bool
}

// Check is what an addon holds, comparable between an addon and an
// instance restored from its backup.
type Check struct {
	// Counts maps each user table ("schema.table" for PostgreSQL, the
	// table's name in DBName for MySQL, so that a restore into another
	// database name compares) or Redis database ("db0") to its number of
	// rows or keys.
	Counts map[string]int64
	// Schema maps each table to its columns ("name type, ..."); empty for
	// Redis.
	Schema map[string]string
}

// Equal reports whether two checks found the same tables, columns and
// counts.
func (c Check) Equal(o Check) bool {
	return maps.Equal(c.Counts, o.Counts) && maps.Equal(c.Schema, o.Schema)
}

// Diff says how o differs from c (empty when Equal), for a failed
// verification's message.
func (c Check) Diff(o Check) string {
	var out []string
	keys := map[string]bool{}
	for k := range c.Counts {
		keys[k] = true
	}
	for k := range o.Counts {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		a, inA := c.Counts[k]
		b, inB := o.Counts[k]
		switch {
		case !inB:
			out = append(out, k+" is missing")
		case !inA:
			out = append(out, k+" is unexpected")
		case a != b:
			out = append(out, fmt.Sprintf("%s has %d, expected %d", k, b, a))
		case c.Schema[k] != o.Schema[k]:
			out = append(out, k+" has other columns")
		}
	}
	return strings.Join(out, "; ")
}

// Summary describes the check in one line ("3 tables, 1204 rows").
func (c Check) Summary() string {
	var n int64
	for _, v := range c.Counts {
		n += v
	}
	what, unit := "tables", "rows"
	if c.Schema == nil {
		what, unit = "databases", "keys"
	}
	return fmt.Sprintf("%d %s, %d %s", len(c.Counts), what, n, unit)
}

// ErrUnsupported is returned for what an engine cannot do (a snapshot of
// a type without BackupSnapshot).
var ErrUnsupported = errors.New("engine: not supported for this addon type")

var registry = map[string]Engine{}

func register(e Engine) { registry[e.Type()] = e }

// Get returns the engine of an addon type.
func Get(typ string) (Engine, bool) {
	e, ok := registry[typ]
	return e, ok
}

// All returns every engine, ordered by type.
func All() []Engine {
	out := make([]Engine, 0, len(registry))
	for _, k := range slices.Sorted(maps.Keys(registry)) {
		out = append(out, registry[k])
	}
	return out
}

// GeneratePassword returns a random secret of 32 characters of the
// URL-safe base64 alphabet (192 bits from crypto/rand), safe in URIs,
// configuration files and SQL without quoting.
func GeneratePassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("engine: generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// GenerateUser returns a random user name: prefix and 8 random lowercase
// letters and digits ("app_k3x9q2mz"), a valid unquoted identifier.
func GenerateUser(prefix string) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("engine: generating a user name: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b), nil
}

// LinkMount is the read-only mount that gives a linked workload the
// addon's socket directory, at LinkRoot/<a.ID>.
func LinkMount(a Addon) runtime.Mount {
	return runtime.Mount{Source: a.RunDir, Target: LinkPath(a), ReadOnly: true}
}

// LinkPath is where a linked workload finds the addon's socket directory.
func LinkPath(a Addon) string { return LinkRoot + "/" + a.ID }

// WorkloadName is the runtime name of the addon's server, or the start of
// the name of a verification instance (whose Spec adds a random suffix,
// so that several can run at once and one left over by a crash is in
// nobody's way).
func WorkloadName(a Addon) string {
	if a.Verify {
		return "addon-" + a.ID + "-verify"
	}
	return "addon-" + a.ID
}

// Labels are the labels of the addon's workload.
func Labels(a Addon) map[string]string {
	role := RoleServer
	if a.Verify {
		role = RoleVerify
	}
	return map[string]string{LabelAddon: a.ID, LabelProject: a.Project, LabelRole: role}
}
