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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/slug"
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
}{
	"create-user":  {"--email E [--name N] [--password-stdin]", adminCreateUser},
	"create-team":  {"--name N --owner-email E", adminCreateTeam},
	"add-member":   {"--team T --email E --role R", adminAddMember},
	"set-plan":     {"--team T --plan P", adminSetPlan},
	"create-token": {"--email E --team T --role R --name N [--kind personal|team] [--expires-in-days D] [--project P]...", adminCreateToken},
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
		return fmt.Errorf("admin %s: %w", name, describe(err))
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
// part on a terminal ("email: must be an email address ...").
func describe(err error) error {
	e := apierr.From(err)
	if e == nil || len(e.Fields) == 0 {
		return err
	}
	var parts []string
	for field, descs := range e.Fields {
		for _, d := range descs {
			parts = append(parts, field+": "+d)
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
		u, err := userByEmail(ctx, store, *owner)
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
		if _, err := teamRole(ctx, store, *team, *role); err != nil {
			return err
		}
		u, err := userByEmail(ctx, store, *email)
		if err != nil {
			return err
		}
		m := auth.Member{TeamID: *team, UserID: u.ID, RoleID: *role, JoinedAt: time.Now().UTC().Truncate(time.Millisecond)}
		ev, err := auth.MemberEvent("added", m)
		if err != nil {
			return err
		}
		err = store.AddMember(ctx, m, ev)
		if errors.Is(err, auth.ErrAlreadyExists) {
			if m, err := store.GetMember(ctx, *team, u.ID); err == nil {
				return fmt.Errorf("%s is already a member of team %q (role %s)", u.Email, *team, m.RoleID)
			}
			return fmt.Errorf("%s is already a member of team %q", u.Email, *team)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(cio.log, "added %s to team %q as %s\n", u.Email, *team, *role)
		return nil
	}
}

// adminSetPlan sets a team's plan, which selects its hourly quota from
// SLIPWAY_RATE_LIMIT_PLANS. Every member's cached principals are dropped
// (one auth.member.updated event each), since grants carry the plan.
func adminSetPlan(fs *flag.FlagSet) func(context.Context, auth.Store, adminIO) error {
	team := fs.String("team", "", "team id (required)")
	plan := fs.String("plan", "", "plan id, a slug such as free or pro; \""+auth.DefaultPlan+"\" is the plan of new teams (required)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("team", *team, "plan", *plan); err != nil {
			return err
		}
		if slug.Make(*plan) != *plan {
			return fmt.Errorf("--plan %q is not a plan id (lower-case letters, digits and inner hyphens)", *plan)
		}
		t, err := store.GetTeam(ctx, *team)
		if errors.Is(err, auth.ErrNotFound) {
			return fmt.Errorf("no team %q (team ids are slugs of the name, e.g. \"default\")", *team)
		} else if err != nil {
			return err
		}
		members, err := store.ListMembers(ctx, t.ID)
		if err != nil {
			return err
		}
		var evs []events.Event
		for _, m := range members {
			ev, err := auth.MemberEvent("updated", m.Member)
			if err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		old := t.Plan
		t.Plan = *plan
		if err := store.UpdateTeam(ctx, t, evs...); err != nil {
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
	days := fs.Int("expires-in-days", 0, "expiry in days from now, up to 3650; 0 means it does not expire")
	var projects stringList
	fs.Var(&projects, "project", "restrict the token to this project id; repeat for several (default: every project)")
	return func(ctx context.Context, store auth.Store, cio adminIO) error {
		if err := required("team", *team, "role", *role, "name", *name); err != nil {
			return err
		}
		spec := auth.TokenSpec{Kind: auth.TokenKind(*kind), Name: *name, TeamID: *team, RoleID: *role, Projects: projects}
		switch spec.Kind {
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
		if n := utf8.RuneCountInString(*name); n < 3 || n > 64 {
			return errors.New("--name must be 3 to 64 characters")
		}
		if *days < 0 || *days > 3650 {
			return errors.New("--expires-in-days must be 0 (never) to 3650")
		}
		for _, p := range projects {
			if p == "" || slug.Make(p) != p {
				return fmt.Errorf("--project %q is not a project id (lower-case letters, digits and hyphens)", p)
			}
		}
		r, err := teamRole(ctx, store, *team, *role)
		if err != nil {
			return err
		}
		owner := ""
		if spec.Kind == auth.KindPersonal {
			u, err := userByEmail(ctx, store, *email)
			if err != nil {
				return err
			}
			if err := withinMembership(ctx, store, u, r); err != nil {
				return err
			}
			spec.UserID, owner = u.ID, " of "+u.Email
		}
		if *days > 0 {
			spec.ExpiresAt = time.Now().UTC().Truncate(time.Millisecond).AddDate(0, 0, *days)
		}
		tok, sec, err := auth.IssueToken(ctx, store, spec)
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

// withinMembership checks that u is a member of role's team whose own role
// grants at least role's permissions: a personal token is capped by its
// user's membership, so anything more would be silently lost.
func withinMembership(ctx context.Context, store auth.Store, u auth.User, role auth.Role) error {
	m, err := store.GetMember(ctx, role.TeamID, u.ID)
	if errors.Is(err, auth.ErrNotFound) {
		return fmt.Errorf("%s is not a member of team %q: add them with \"slipway admin add-member\" first", u.Email, role.TeamID)
	} else if err != nil {
		return err
	}
	held, err := store.GetRole(ctx, role.TeamID, m.RoleID)
	if err != nil {
		return err
	}
	for _, p := range role.Permissions {
		if !slices.Contains(held.Permissions, p) {
			return fmt.Errorf("role %s grants more than %s's role in team %q (%s), which caps their tokens: "+
				"choose a narrower role or change their membership", role.ID, u.Email, role.TeamID, held.ID)
		}
	}
	return nil
}

// userByEmail finds a user by address, as typed (any case).
func userByEmail(ctx context.Context, store auth.Store, email string) (auth.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	u, err := store.GetUserByEmail(ctx, email)
	if errors.Is(err, auth.ErrNotFound) {
		return auth.User{}, fmt.Errorf("no user with email %q: create it with \"slipway admin create-user\" first", email)
	}
	return u, err
}

// teamRole returns a role of a team, saying which of the two is missing.
func teamRole(ctx context.Context, store auth.Store, team, role string) (auth.Role, error) {
	if _, err := store.GetTeam(ctx, team); errors.Is(err, auth.ErrNotFound) {
		return auth.Role{}, fmt.Errorf("no team %q (team ids are slugs of the name, e.g. \"default\")", team)
	} else if err != nil {
		return auth.Role{}, err
	}
	r, err := store.GetRole(ctx, team, role)
	if errors.Is(err, auth.ErrNotFound) {
		var ids []string
		if roles, err := store.ListRoles(ctx, team); err == nil {
			for _, r := range roles {
				ids = append(ids, r.ID)
			}
		}
		return auth.Role{}, fmt.Errorf("team %q has no role %q (its roles: %s)", team, role, strings.Join(ids, ", "))
	}
	return r, err
}
