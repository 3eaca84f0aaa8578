package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/auth"
)

const adminUsage = `Usage: slipway admin <command> [flags]

Manage users, teams and tokens directly in the auth database, with the
database settings of "slipway migrate" (--data-dir, --auth-database-url and
their SLIPWAY_* variables). Safe while Slipway runs (SQLite WAL or
PostgreSQL); the database must have been migrated.

Commands:
  create-user   --email E [--name N] [--password-stdin]
  create-team   --name N --owner-email E
  add-member    --team T --email E --role R
  set-plan      --team T --plan P
  create-token  --email E --team T --role R --name N [--kind personal|team]
                [--expires-in-days D] [--project P]...

create-user and create-team print the new id on stdout; create-token prints
only the secret, so that TOKEN=$(slipway admin create-token ...) works.
Notes go to stderr. Run "slipway admin <command> -h" for a command's flags.
`

// adminIO is where an admin command reads a password and writes its
// result (out) and notes (log).
type adminIO struct {
	in       io.Reader
	out, log io.Writer
}

// adminCommand registers its flags on fs and returns the function that
// runs it once they are parsed.
type adminCommand func(fs *flag.FlagSet) func(ctx context.Context, store auth.Store, cio adminIO) error

var adminCommands = map[string]struct {
	synopsis string
	cmd      adminCommand
	// flags names the flag behind each API field the auth rules may
	// name in an error, so that the operator reads "--role: ..." rather
	// than the API's "roleId: ...".
	flags map[string]string
}{
	"create-user": {"--email E [--name N] [--password-stdin]", adminCreateUser,
		map[string]string{"email": "--email", "password": "--password-stdin"}},
	"create-team": {"--name N --owner-email E", adminCreateTeam,
		map[string]string{"name": "--name", "email": "--owner-email", "owner": "--owner-email"}},
	"add-member": {"--team T --email E --role R", adminAddMember,
		map[string]string{"email": "--email", "roleId": "--role"}},
	"set-plan": {"--team T --plan P", adminSetPlan,
		map[string]string{"plan": "--plan"}},
	"create-token": {"--email E --team T --role R --name N [--kind personal|team] [--expires-in-days D] [--project P]...", adminCreateToken,
		map[string]string{"email": "--email", "kind": "--kind", "name": "--name", "roleId": "--role",
			"expiresInDays": "--expires-in-days", "projects": "--project"}},
}

// admin runs `slipway admin <command>` on the process's standard streams.
func admin(ctx context.Context, args []string) error {
	return runAdmin(ctx, args, adminIO{in: os.Stdin, out: os.Stdout, log: os.Stderr})
}

func runAdmin(ctx context.Context, args []string, cio adminIO) error {
	if len(args) == 0 {
		fmt.Fprint(cio.log, adminUsage)
		return errors.New("admin: missing command")
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(cio.out, adminUsage)
		return nil
	}
	c, ok := adminCommands[name]
	if !ok {
		fmt.Fprint(cio.log, adminUsage)
		return fmt.Errorf("admin: unknown command %q", name)
	}
	fs := flag.NewFlagSet("slipway admin "+name, flag.ContinueOnError)
	fs.SetOutput(cio.log)
	run := c.cmd(fs)
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	// Every setting of `slipway serve` is accepted, so the same flags and
	// environment work here; only the database ones matter.
	registerSettings(fs)
	fs.Usage = func() {
		fmt.Fprintf(cio.log, "Usage: slipway admin %s %s\n\n", name, c.synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			if own[f.Name] || f.Name == "data-dir" || f.Name == "auth-database-url" {
				def := ""
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
					def = fmt.Sprintf(" (default %q)", f.DefValue)
				}
				fmt.Fprintf(cio.log, "  --%s\n    \t%s%s\n", f.Name, f.Usage, def)
			}
		})
		fmt.Fprintln(cio.log, "\nThe other flags and SLIPWAY_* variables of \"slipway serve\" are accepted too.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("admin %s: unexpected argument %q", name, fs.Arg(0))
	}
	// The settings given as flags go through parseConfig, which applies
	// the environment and checks them as for any other command.
	var cfgArgs []string
	fs.Visit(func(f *flag.Flag) {
		if !own[f.Name] {
			cfgArgs = append(cfgArgs, "--"+f.Name+"="+f.Value.String())
		}
	})
	cfg, err := parseConfig("admin", cfgArgs)
	if err != nil {
		return err
	}
	db, err := openAuthDatabase(ctx, cfg)
	if err != nil {
		return fmt.Errorf("admin %s: %w", name, err)
	}
	defer func() { _ = db.Close() }()
	// No relay here: the events a command commits to the outbox go out
	// from the running server's relay at its next poll.
	if err := run(ctx, auth.NewSQLStore(db, nil), cio); err != nil {
		return fmt.Errorf("admin %s: %w", name, describe(err, c.flags))
	}
	return nil
}

// openAuthDatabase opens the auth database the server uses and checks that
// it is migrated. It never creates a SQLite file: a mistyped data
// directory must not yield a fresh, empty database.
func openAuthDatabase(ctx context.Context, cfg config) (*sqldb.DB, error) {
	url := cfg.database(auth.Component)
	if path, ok := sqlitePath(url); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no auth database at %s: point --data-dir (SLIPWAY_DATA_DIR) or --auth-database-url "+
				"(SLIPWAY_AUTH_DATABASE_URL) at the server's, or create it with \"slipway migrate\"", path)
		}
	}
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("auth database: %w", err)
	}
	if _, err := auth.NewSQLStore(db, nil).HasUsers(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("auth database is not usable (run \"slipway migrate\" first?): %w", err)
	}
	return db, nil
}

// sqlitePath is the file of a SQLite URL as sqldb.Open reads it; ok is
// false for PostgreSQL.
func sqlitePath(url string) (string, bool) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return "", false
	}
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "file:")
	path = strings.TrimPrefix(path, "//")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path, path != ""
}

// describe spells out an API error's field details, which are the useful
// part on a terminal ("--email: must be an email address ..."), naming
// each field by its flag in flags when it has one; an indexed field is
// the flag's n-th use ("projects[1]" is "--project #2").
func describe(err error, flags map[string]string) error {
	e := apierr.From(err)
	if e == nil || len(e.Fields) == 0 {
		return err
	}
	var parts []string
	for field, descs := range e.Fields {
		name := field
		stem, index, indexed := strings.Cut(strings.TrimSuffix(field, "]"), "[")
		if flag, ok := flags[stem]; ok {
			name = flag
			if n, err := strconv.Atoi(index); indexed && err == nil {
				name = fmt.Sprintf("%s #%d", flag, n+1)
			}
		}
		for _, d := range descs {
			parts = append(parts, name+": "+d)
		}
	}
	slices.Sort(parts)
	return errors.New(strings.Join(parts, "; "))
}

// required fails on the first of the named flags (pairs of name, value)
// that is empty.
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return fmt.Errorf("--%s is required", pairs[i])
		}
	}
	return nil
}

func adminCreateUser(fs *flag.FlagSet) func(context.Context, auth.Store, adminIO) error {
	email := fs.String("email", "", "the user's email address (required)")
	name := fs.String("name", "", "display name (default: the part of the email before @)")
	pwStdin := fs.Bool("password-stdin", false, "read the user's password from stdin, one line (without it the user has no password)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("email", *email); err != nil {
			return err
		}
		var pw string
		if *pwStdin {
			var err error
			if pw, err = readPassword(cio.in); err != nil {
				return err
			}
		}
		u, err := auth.CreateUser(ctx, store, *email, *name, pw)
		if err != nil {
			return err
		}
		how := "without a password"
		if pw != "" {
			how = "with the password from stdin (stored as an argon2id hash)"
		}
		fmt.Fprintln(cio.out, u.ID)
		fmt.Fprintf(cio.log, "created user %s (%s) %s\n", u.Email, u.Name, how)
		return nil
	}
}

// readPassword reads one line from in: the password, without its line
// ending. It refuses a terminal, where the password would be echoed.
func readPassword(in io.Reader) (string, error) {
	if f, ok := in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", errors.New("--password-stdin reads the password from a pipe or a file, not a terminal " +
				"(where it would be echoed): ... --password-stdin < password-file")
		}
	}
	data, err := io.ReadAll(io.LimitReader(in, secret.MaxPasswordLen+3))
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case pw == "":
		return "", errors.New("--password-stdin: no password on stdin")
	case strings.ContainsAny(pw, "\r\n"):
		return "", errors.New("--password-stdin: the password on stdin spans several lines; give one")
	case len(pw) > secret.MaxPasswordLen:
		return "", fmt.Errorf("--password-stdin: the password is longer than %d bytes", secret.MaxPasswordLen)
	}
	return pw, nil
}

func adminCreateTeam(fs *flag.FlagSet) func(context.Context, auth.Store, adminIO) error {
	name := fs.String("name", "", "the team's name; its id is the slug of it (required)")
	owner := fs.String("owner-email", "", "email of the existing user who becomes the team's admin (required)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("name", *name, "owner-email", *owner); err != nil {
			return err
		}
		u, err := auth.UserByEmail(ctx, store, *owner)
		if err != nil {
			return err
		}
		t, err := auth.CreateTeam(ctx, store, *name, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintln(cio.out, t.ID)
		fmt.Fprintf(cio.log, "created team %q (id %s, roles admin, developer, viewer) with %s as its admin\n", t.Name, t.ID, u.Email)
		return nil
	}
}

func adminAddMember(fs *flag.FlagSet) func(context.Context, auth.Store, adminIO) error {
	team := fs.String("team", "", "team id (required)")
	email := fs.String("email", "", "email of the existing user to add (required)")
	role := fs.String("role", "", "role id in the team, e.g. admin, developer, viewer (required)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("team", *team, "email", *email, "role", *role); err != nil {
			return err
		}
		m, err := auth.AddMember(ctx, store, *team, *email, *role)
		if err != nil {
			return err
		}
		fmt.Fprintf(cio.log, "added %s to team %q as %s\n", m.User.Email, m.TeamID, m.RoleID)
		return nil
	}
}

// adminSetPlan sets a team's plan (auth.SetTeamPlan), which selects its
// hourly quota from SLIPWAY_RATE_LIMIT_PLANS.
func adminSetPlan(fs *flag.FlagSet) func(context.Context, auth.Store, adminIO) error {
	team := fs.String("team", "", "team id (required)")
	plan := fs.String("plan", "", "plan id, a slug such as free or pro; \""+auth.DefaultPlan+"\" is the plan of new teams (required)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("team", *team, "plan", *plan); err != nil {
			return err
		}
		t, old, err := auth.SetTeamPlan(ctx, store, *team, *plan)
		if err != nil {
			return err
		}
		fmt.Fprintf(cio.log, "team %q: plan %s (was %s)\n", t.ID, t.Plan, old)
		// The limits are the settings of this invocation, which are the
		// server's when both read the same environment.
		if f := fs.Lookup("rate-limit-plans"); f != nil && t.Plan != auth.DefaultPlan {
			if plans, err := quota.ParsePlans(f.Value.String()); err == nil {
				if _, ok := plans[t.Plan]; !ok {
					fmt.Fprintf(cio.log, "note: SLIPWAY_RATE_LIMIT_PLANS names no plan %q here, so the team gets the default limit\n", t.Plan)
				}
			}
		}
		return nil
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func adminCreateToken(fs *flag.FlagSet) func(context.Context, auth.Store, adminIO) error {
	email := fs.String("email", "", "email of the user a personal token acts as; that user must be a member of the team (required for --kind personal, not allowed for team tokens)")
	team := fs.String("team", "", "team id the token acts on (required)")
	role := fs.String("role", "", "role id in the team the token is bound to (required)")
	name := fs.String("name", "", "display name, 3 to 64 characters (required)")
	kind := fs.String("kind", "personal", "personal (acts as the user, within the role) or team (acts as the team)")
	days := fs.Int("expires-in-days", 0, fmt.Sprintf("expiry in days from now, up to %d; 0 means it does not expire", auth.MaxTokenExpiryDays))
	var projects stringList
	fs.Var(&projects, "project", "restrict the token to this project id; repeat for several (default: every project)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("team", *team, "role", *role, "name", *name); err != nil {
			return err
		}
		req := auth.TokenRequest{Kind: auth.TokenKind(*kind), Name: *name, TeamID: *team, RoleID: *role,
			Projects: projects, ExpiresInDays: *days}
		// Which flags go together is the command's business; the values
		// are checked by auth.CreateToken, as for the API. Credentials
		// are left to the API, whose response carries both their key id
		// and their secret, where this command prints only a secret.
		switch req.Kind {
		case auth.KindPersonal:
			if strings.TrimSpace(*email) == "" {
				return errors.New("--email is required for a personal token (or give --kind team)")
			}
		case auth.KindTeam:
			if *email != "" {
				return errors.New("a team token acts as the team, not as a user: drop --email (or give --kind personal)")
			}
		default:
			return fmt.Errorf(`--kind %q: want personal or team (API credentials: POST /v1/api-tokens with "kind": "credential")`, *kind)
		}
		owner := ""
		if req.Kind == auth.KindPersonal {
			u, err := auth.UserByEmail(ctx, store, *email)
			if err != nil {
				return err
			}
			req.UserID, owner = u.ID, " of "+u.Email
		}
		// No grant bounds the operator; the token is still capped by its
		// user's membership.
		tok, sec, err := auth.CreateToken(ctx, store, req, nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(cio.out, sec)
		scope := "every project"
		if len(tok.Projects) > 0 {
			scope = "projects " + strings.Join(tok.Projects, ", ")
		}
		expiry := "never expires"
		if !tok.ExpiresAt.IsZero() {
			expiry = "expires " + tok.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(cio.log, "created %s token %q%s (id %s): role %s in team %q, %s, %s.\n"+
			"The secret (on stdout) is shown this once; only its hash is stored.\n",
			tok.Kind, tok.Name, owner, tok.ID, tok.RoleID, tok.TeamID, scope, expiry)
		return nil
	}
}
