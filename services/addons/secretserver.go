package addons

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/slug"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SecretAddonConnection is what a linked addon gives the workloads of
// its project: its connection values by key and the host directory of
// its sockets.
type SecretAddonConnection struct {
	// Name, Type ("postgresql", ...) and Version describe the addon.
	Name, Type, Version string
	// Values are the addon's linkable keys and their values (e.g. HOST,
	// PORT, USERNAME, PASSWORD, DATABASE): what GET …/secrets/{id}/addons/
	// {addonId} offers as availableKeys.
	Values map[string]string
	// SocketDir is the host directory holding the addon's unix sockets,
	// which a linked workload mounts read-only at MountTarget (where the
	// addon's connection values say its socket is). Empty when the addon
	// has none (yet).
	SocketDir string
	// MountTarget is under SecretAddonMountDir; empty means
	// SecretAddonMountDir/<addon id>.
	MountTarget string
}

// AddonConnections is what secret groups need of addons; the addons
// server implements it.
type AddonConnections interface {
	// Connection returns the addon's connection for linking. It fails
	// with apierr.ErrNotFound when the project has no such addon.
	Connection(ctx context.Context, teamID, projectID, addonID string) (SecretAddonConnection, error)
}

// SecretAddonMountDir is where a workload sees the socket directories of
// its linked addons, read-only: each at its SecretAddonConnection's
// MountTarget below it.
const SecretAddonMountDir = "/run/slipway/addons"

// secretMaxBytes bounds a group's (or a global secret's) values: keys,
// values, file paths and files' base64 data together. They travel to
// every workload start and sit in its environment and mounts; 256 KiB is
// the bound a service's own environment has.
const secretMaxBytes = 256 << 10

// Events of secret groups and global secrets: slipway.addons.secret.*.
const (
	secretEventService  = "addons"
	secretEventResource = "secret"
)

// SecretProjectsConsumer is the durable consumer through which secret
// groups learn of deleted projects (component.ProjectDeletedConsumer
// calling SecretsServer.DeleteProjectSecrets).
const SecretProjectsConsumer = "addons-secrets-projects"

// SecretsServer is SecretsService: thin handlers over a SecretStore. It
// is exported so that the components that call ResolveEnvironment (jobs,
// deployments) test against the real server.
type SecretsServer struct {
	addonsv1.UnimplementedSecretsServiceServer
	store    SecretStore
	addons   AddonConnections
	cursors  *paging.Cursors
	projects projectsv1.ProjectsServiceClient
	internal func(context.Context) context.Context
	log      *slog.Logger
	now      func() time.Time
}

// NewSecretsServer returns the secret groups' server on db (migrated with
// migrations.Set), sealing values with box; notify wakes the outbox
// relay. projects answers whether a project exists (called with
// internal(ctx)); addons gives linked addons' values.
func NewSecretsServer(db *sqldb.DB, notify func(), box *secret.Box, cursors *paging.Cursors, projects projectsv1.ProjectsServiceClient,
	internal func(context.Context) context.Context, addons AddonConnections, log *slog.Logger) *SecretsServer {
	if cursors == nil {
		cursors = paging.EphemeralCursors()
	}
	if internal == nil {
		internal = func(ctx context.Context) context.Context { return ctx }
	}
	if log == nil {
		log = slog.Default()
	}
	return &SecretsServer{
		store: NewSecretSQLStore(db, box, notify), addons: addons, cursors: cursors, projects: projects, internal: internal,
		log: log.With("service", "secrets"), now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
	}
}

// secretTeam is the team the call acts on, as the authorization
// interceptor resolved it.
func secretTeam(ctx context.Context) (string, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return "", authz.Unauthenticated("credentials required")
	}
	return grant.GetTeamId(), nil
}

// checkProject answers 404 for a project the team does not have.
func (s *SecretsServer) checkProject(ctx context.Context, team, project string) error {
	_, err := s.projects.LookupProject(s.internal(ctx), &projectsv1.LookupProjectRequest{TeamId: team, ProjectId: project})
	if status.Code(err) == codes.NotFound {
		return apierr.NotFound("project", project)
	}
	if err != nil {
		s.log.WarnContext(ctx, "looking up a project", "error", err)
		return apierr.Unavailable("the projects service")
	}
	return nil
}

// ---- project secret groups

// ListSecrets implements SecretsService.
func (s *SecretsServer) ListSecrets(ctx context.Context, req *addonsv1.ListSecretsRequest) (*addonsv1.ListSecretsResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	scope := "secrets/" + team + "/" + req.GetProjectId()
	p, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	if err := s.checkProject(ctx, team, req.GetProjectId()); err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListSecretGroups(ctx, team, req.GetProjectId(), p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListSecretsResponse{Secrets: make([]*addonsv1.SecretSummary, 0, len(list))}
	last := ""
	for _, g := range list {
		resp.Secrets = append(resp.Secrets, secretSummaryOf(g))
		last = g.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateSecret implements SecretsService.
func (s *SecretsServer) CreateSecret(ctx context.Context, req *addonsv1.CreateSecretRequest) (*addonsv1.CreateSecretResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkProject(ctx, team, req.GetProjectId()); err != nil {
		return nil, err
	}
	g, err := s.groupFrom(ctx, team, req.GetProjectId(), req.GetSpec())
	if err != nil {
		return nil, err
	}
	g.CreatedAt, g.UpdatedAt = s.now(), s.now()
	evs, err := secretGroupEvents(events.ResourceCreated, g)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateSecretGroup(ctx, g, evs...); err != nil {
		return nil, apierr.FromStore(err, "secret", g.ID)
	}
	return &addonsv1.CreateSecretResponse{Secret: secretOf(g, secretDataOf(g.Variables, g.Files))}, nil
}

// PutSecret implements SecretsService: create, or replace every setting
// of the group with the same id.
func (s *SecretsServer) PutSecret(ctx context.Context, req *addonsv1.PutSecretRequest) (*addonsv1.PutSecretResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkProject(ctx, team, req.GetProjectId()); err != nil {
		return nil, err
	}
	want, err := s.groupFrom(ctx, team, req.GetProjectId(), req.GetSpec())
	if err != nil {
		return nil, err
	}
	// A create that loses its race with another put's create updates
	// instead; once is enough, since the group then exists.
	for range 2 {
		g, err := s.store.UpdateSecretGroup(ctx, team, want.ProjectID, want.ID, func(g *SecretGroup) ([]events.Event, error) {
			before := cloneSecretGroup(*g)
			created := g.CreatedAt
			*g = cloneSecretGroup(want)
			g.CreatedAt, g.UpdatedAt = created, before.UpdatedAt
			return s.touchedGroup(before, g)
		})
		if err == nil {
			return &addonsv1.PutSecretResponse{Secret: secretOf(g, secretDataOf(g.Variables, g.Files))}, nil
		}
		if !errors.Is(err, apierr.ErrNotFound) {
			return nil, apierr.FromStore(err, "secret", want.ID)
		}
		want.CreatedAt, want.UpdatedAt = s.now(), s.now()
		evs, err := secretGroupEvents(events.ResourceCreated, want)
		if err != nil {
			return nil, err
		}
		err = s.store.CreateSecretGroup(ctx, want, evs...)
		if err == nil {
			return &addonsv1.PutSecretResponse{Secret: secretOf(want, secretDataOf(want.Variables, want.Files))}, nil
		}
		if !errors.Is(err, apierr.ErrAlreadyExists) {
			return nil, apierr.FromStore(err, "secret", want.ID)
		}
	}
	return nil, apierr.FromStore(sqldb.ErrContended, "secret", want.ID)
}

// GetSecret implements SecretsService.
func (s *SecretsServer) GetSecret(ctx context.Context, req *addonsv1.GetSecretRequest) (*addonsv1.GetSecretResponse, error) {
	g, err := s.group(ctx, req.GetProjectId(), req.GetSecretId())
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	if req.GetShow() != "this" {
		linked, err := s.linkedValues(ctx, g)
		if err != nil {
			return nil, err
		}
		for _, l := range linked {
			maps.Copy(vars, l.variables)
		}
	}
	files := g.Files
	if req.GetShow() == "inherited" {
		files = nil
	} else {
		maps.Copy(vars, g.Variables) // the group's own values win, as in ResolveEnvironment
	}
	return &addonsv1.GetSecretResponse{Secret: secretOf(g, secretDataOf(vars, files))}, nil
}

// UpdateSecret implements SecretsService (Northflank's POST on the group).
func (s *SecretsServer) UpdateSecret(ctx context.Context, req *addonsv1.UpdateSecretRequest) (*addonsv1.UpdateSecretResponse, error) {
	if _, err := s.patchGroup(ctx, req.GetProjectId(), req.GetSecretId(), req.GetPatch()); err != nil {
		return nil, err
	}
	return &addonsv1.UpdateSecretResponse{}, nil
}

// PatchSecret implements SecretsService.
func (s *SecretsServer) PatchSecret(ctx context.Context, req *addonsv1.PatchSecretRequest) (*addonsv1.PatchSecretResponse, error) {
	g, err := s.patchGroup(ctx, req.GetProjectId(), req.GetSecretId(), req.GetPatch())
	if err != nil {
		return nil, err
	}
	return &addonsv1.PatchSecretResponse{Secret: secretOf(g, secretDataOf(g.Variables, g.Files))}, nil
}

// DeleteSecret implements SecretsService.
func (s *SecretsServer) DeleteSecret(ctx context.Context, req *addonsv1.DeleteSecretRequest) (*addonsv1.DeleteSecretResponse, error) {
	g, err := s.group(ctx, req.GetProjectId(), req.GetSecretId())
	if err != nil {
		return nil, err
	}
	if err := s.deleteGroup(ctx, g); err != nil {
		return nil, err
	}
	return &addonsv1.DeleteSecretResponse{}, nil
}

// deleteGroup deletes g with its events.
func (s *SecretsServer) deleteGroup(ctx context.Context, g SecretGroup) error {
	evs, err := secretGroupEvents(events.ResourceDeleted, g)
	if err != nil {
		return err
	}
	if err := s.store.DeleteSecretGroup(ctx, g.TeamID, g.ProjectID, g.ID, evs...); err != nil {
		return apierr.FromStore(err, "secret", g.ID)
	}
	return nil
}

// GetSecretDetails implements SecretsService.
func (s *SecretsServer) GetSecretDetails(ctx context.Context, req *addonsv1.GetSecretDetailsRequest) (*addonsv1.GetSecretDetailsResponse, error) {
	g, err := s.group(ctx, req.GetProjectId(), req.GetSecretId())
	if err != nil {
		return nil, err
	}
	linked, err := s.linkedValues(ctx, g)
	if err != nil {
		return nil, err
	}
	out := &addonsv1.SecretDetails{
		Id: g.ID, ProjectId: g.ProjectID, Name: g.Name, Tags: secretList(g.Tags), Description: g.Description, Type: g.Type,
		SecretType: g.SecretType, Priority: int32(g.Priority), Restrictions: secretRestrictionsOf(g.Restrictions),
		CreatedAt: timestamppb.New(g.CreatedAt), UpdatedAt: timestamppb.New(g.UpdatedAt),
		Secrets: secretDataOf(g.Variables, g.Files), AddonSecrets: []*addonsv1.SecretAddonValues{},
	}
	for _, l := range linked {
		out.AddonSecrets = append(out.AddonSecrets, &addonsv1.SecretAddonValues{
			Id: l.id, Name: l.conn.Name, AddonType: l.conn.Type, Version: l.conn.Version, Variables: l.variables,
		})
	}
	return &addonsv1.GetSecretDetailsResponse{Secret: out}, nil
}

// GetSecretLink implements SecretsService.
func (s *SecretsServer) GetSecretLink(ctx context.Context, req *addonsv1.GetSecretLinkRequest) (*addonsv1.GetSecretLinkResponse, error) {
	g, err := s.group(ctx, req.GetProjectId(), req.GetSecretId())
	if err != nil {
		return nil, err
	}
	conn, err := s.connection(ctx, g.TeamID, g.ProjectID, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	out := &addonsv1.GetSecretLinkResponse{
		SecretName: g.Name, SecretId: g.ID, AddonName: conn.Name, AddonId: req.GetAddonId(), AddonType: conn.Type,
		LinkedKeys: []*addonsv1.SecretAddonKey{}, AvailableKeys: slices.Sorted(maps.Keys(conn.Values)),
	}
	if out.AvailableKeys == nil {
		out.AvailableKeys = []string{}
	}
	if i := slices.IndexFunc(g.Addons, func(l SecretAddonLink) bool { return l.AddonID == req.GetAddonId() }); i >= 0 {
		out.Linked, out.LinkedKeys = true, secretKeysOf(req.GetAddonId(), g.Addons[i].Keys)
	}
	return out, nil
}

// UpdateSecretLink implements SecretsService.
func (s *SecretsServer) UpdateSecretLink(ctx context.Context, req *addonsv1.UpdateSecretLinkRequest) (*addonsv1.UpdateSecretLinkResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := s.connection(ctx, team, req.GetProjectId(), req.GetAddonId())
	if err != nil {
		return nil, err
	}
	link := SecretAddonLink{AddonID: req.GetAddonId(), Keys: secretKeysFrom(req.GetKeys())}
	if err := checkSecretLink("keys", link, conn); err != nil {
		return nil, err
	}
	g, err := s.store.UpdateSecretGroup(ctx, team, req.GetProjectId(), req.GetSecretId(), func(g *SecretGroup) ([]events.Event, error) {
		before := cloneSecretGroup(*g)
		if i := slices.IndexFunc(g.Addons, func(l SecretAddonLink) bool { return l.AddonID == link.AddonID }); i >= 0 {
			g.Addons[i] = link
		} else {
			g.Addons = append(g.Addons, link)
			slices.SortFunc(g.Addons, func(a, b SecretAddonLink) int { return cmp.Compare(a.AddonID, b.AddonID) })
		}
		if err := checkSecretAliases(g.Addons); err != nil {
			return nil, err
		}
		return s.touchedGroup(before, g)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "secret", req.GetSecretId())
	}
	i := slices.IndexFunc(g.Addons, func(l SecretAddonLink) bool { return l.AddonID == link.AddonID })
	return &addonsv1.UpdateSecretLinkResponse{Keys: secretKeysOf(link.AddonID, g.Addons[i].Keys)}, nil
}

// DeleteSecretLink implements SecretsService.
func (s *SecretsServer) DeleteSecretLink(ctx context.Context, req *addonsv1.DeleteSecretLinkRequest) (*addonsv1.DeleteSecretLinkResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateSecretGroup(ctx, team, req.GetProjectId(), req.GetSecretId(), func(g *SecretGroup) ([]events.Event, error) {
		i := slices.IndexFunc(g.Addons, func(l SecretAddonLink) bool { return l.AddonID == req.GetAddonId() })
		if i < 0 {
			return nil, apierr.NotFound("addon link", req.GetAddonId())
		}
		before := cloneSecretGroup(*g)
		g.Addons = slices.Delete(g.Addons, i, i+1)
		return s.touchedGroup(before, g)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "secret", req.GetSecretId())
	}
	return &addonsv1.DeleteSecretLinkResponse{}, nil
}

// group reads a group of the caller's team.
func (s *SecretsServer) group(ctx context.Context, project, id string) (SecretGroup, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return SecretGroup{}, err
	}
	g, err := s.store.GetSecretGroup(ctx, team, project, id)
	if err != nil {
		return SecretGroup{}, apierr.FromStore(err, "secret", id)
	}
	return g, nil
}

// patchGroup applies an update or patch request.
func (s *SecretsServer) patchGroup(ctx context.Context, project, id string, p *addonsv1.SecretPatch) (SecretGroup, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return SecretGroup{}, err
	}
	// Values and links are checked before the store's transaction: a
	// link's check asks the addons, which a retried mutate should not
	// repeat.
	var vars map[string]string
	var files map[string]SecretFileValue
	if p.GetSecrets() != nil {
		if vars, files, err = secretValuesFrom("secrets", p.GetSecrets().GetVariables(), p.GetSecrets().GetFiles()); err != nil {
			return SecretGroup{}, err
		}
	}
	var links []SecretAddonLink
	if len(p.GetAddonDependencies()) > 0 {
		if links, err = s.linksFrom(ctx, team, project, p.GetAddonDependencies()); err != nil {
			return SecretGroup{}, err
		}
	}
	g, err := s.store.UpdateSecretGroup(ctx, team, project, id, func(g *SecretGroup) ([]events.Event, error) {
		before := cloneSecretGroup(*g)
		if p.Description != nil {
			g.Description = p.GetDescription()
		}
		if len(p.GetTags()) > 0 {
			g.Tags = slices.Clone(p.GetTags())
		}
		if p.Type != nil {
			g.Type = p.GetType()
		}
		if p.SecretType != nil {
			g.SecretType = p.GetSecretType()
		}
		if p.Priority != nil {
			g.Priority = int(p.GetPriority())
		}
		if p.GetRestrictions() != nil {
			g.Restrictions = secretRestrictionsFrom(p.GetRestrictions())
		}
		if links != nil {
			g.Addons = links
		}
		if p.GetSecrets() != nil {
			if err := patchSecretValues(&g.Variables, &g.Files, vars, files); err != nil {
				return nil, err
			}
		}
		return s.touchedGroup(before, g)
	})
	if err != nil {
		return SecretGroup{}, apierr.FromStore(err, "secret", id)
	}
	return g, nil
}

// touchedGroup stamps a changed group and returns its events; an
// unchanged group gets none (and the store writes nothing).
func (s *SecretsServer) touchedGroup(before SecretGroup, g *SecretGroup) ([]events.Event, error) {
	normalizeSecretGroup(&before)
	normalizeSecretGroup(g)
	// Identity, creation time and version are the store's; only what a
	// request may change counts.
	g.TeamID, g.ProjectID, g.ID, g.CreatedAt, g.Version = before.TeamID, before.ProjectID, before.ID, before.CreatedAt, before.Version
	g.UpdatedAt = before.UpdatedAt
	if secretGroupsEqual(before, *g) {
		return nil, nil
	}
	g.UpdatedAt = s.now()
	return secretGroupEvents(events.ResourceUpdated, *g)
}

// groupFrom validates a create or put request and builds the group.
func (s *SecretsServer) groupFrom(ctx context.Context, team, project string, spec *addonsv1.SecretSpec) (SecretGroup, error) {
	id := slug.Make(spec.GetName())
	if id == "" {
		return SecretGroup{}, apierr.InvalidField("name", "must contain a letter or a digit")
	}
	vars, files, err := secretValuesFrom("secrets", spec.GetSecrets().GetVariables(), spec.GetSecrets().GetFiles())
	if err != nil {
		return SecretGroup{}, err
	}
	links, err := s.linksFrom(ctx, team, project, spec.GetAddonDependencies())
	if err != nil {
		return SecretGroup{}, err
	}
	typ := spec.GetType()
	if typ == "" {
		typ = "secret"
	}
	g := SecretGroup{
		TeamID: team, ProjectID: project, ID: id, Name: spec.GetName(), Description: spec.GetDescription(), Tags: slices.Clone(spec.GetTags()),
		Type: typ, SecretType: spec.GetSecretType(), Priority: int(spec.GetPriority()), Restrictions: secretRestrictionsFrom(spec.GetRestrictions()),
		Addons: links, Variables: vars, Files: files,
	}
	normalizeSecretGroup(&g)
	return g, nil
}

// linksFrom validates addon links against the project's addons.
func (s *SecretsServer) linksFrom(ctx context.Context, team, project string, deps []*addonsv1.SecretAddonDependency) ([]SecretAddonLink, error) {
	out := make([]SecretAddonLink, 0, len(deps))
	seen := map[string]bool{}
	for i, d := range deps {
		field := "addonDependencies[" + strconv.Itoa(i) + "]"
		if seen[d.GetAddonId()] {
			return nil, apierr.InvalidField(field+".addonId", "links "+d.GetAddonId()+" a second time; link each addon once")
		}
		seen[d.GetAddonId()] = true
		conn, err := s.connection(ctx, team, project, d.GetAddonId())
		if apierr.From(err) != nil && apierr.From(err).Code == codes.NotFound {
			return nil, apierr.InvalidField(field+".addonId", "the project has no addon "+d.GetAddonId())
		} else if err != nil {
			return nil, err
		}
		link := SecretAddonLink{AddonID: d.GetAddonId(), Keys: secretKeysFrom(d.GetKeys())}
		if err := checkSecretLink(field+".keys", link, conn); err != nil {
			return nil, err
		}
		out = append(out, link)
	}
	slices.SortFunc(out, func(a, b SecretAddonLink) int { return cmp.Compare(a.AddonID, b.AddonID) })
	if err := checkSecretAliases(out); err != nil {
		return nil, err
	}
	return out, nil
}

// connection asks the addons for one addon's connection: 404 when the
// project has no such addon, 503 when they cannot answer.
func (s *SecretsServer) connection(ctx context.Context, team, project, addon string) (SecretAddonConnection, error) {
	if s.addons == nil {
		return SecretAddonConnection{}, apierr.NotFound("addon", addon)
	}
	conn, err := s.addons.Connection(ctx, team, project, addon)
	if errors.Is(err, apierr.ErrNotFound) {
		return SecretAddonConnection{}, apierr.NotFound("addon", addon)
	}
	if e := apierr.From(err); e != nil && e.Code == codes.NotFound {
		return SecretAddonConnection{}, e
	}
	if err != nil {
		s.log.WarnContext(ctx, "reading an addon's connection", "addon", addon, "error", err)
		return SecretAddonConnection{}, apierr.Unavailable("the addon's connection")
	}
	return conn, nil
}

// secretLinked is one linked addon's values as a group gives them.
type secretLinked struct {
	id        string
	conn      SecretAddonConnection
	variables map[string]string
}

// linkedValues reads the values g's links give, link by link (by addon
// id). A link to an addon that no longer exists gives nothing: the
// addon's deletion took its values away.
func (s *SecretsServer) linkedValues(ctx context.Context, g SecretGroup) ([]secretLinked, error) {
	var out []secretLinked
	for _, l := range g.Addons {
		conn, err := s.connection(ctx, g.TeamID, g.ProjectID, l.AddonID)
		if e := apierr.From(err); e != nil && e.Code == codes.NotFound {
			continue
		} else if err != nil {
			return nil, err
		}
		vars := map[string]string{}
		for _, k := range l.Keys {
			v, ok := conn.Values[k.Name]
			if !ok {
				continue // the addon no longer offers the key
			}
			vars[SecretDefaultKey(l.AddonID, k.Name)] = v
			for _, a := range k.Aliases {
				vars[a] = v
			}
		}
		out = append(out, secretLinked{id: l.AddonID, conn: conn, variables: vars})
	}
	return out, nil
}

// ---- global secrets

// ListGlobalSecrets implements SecretsService.
func (s *SecretsServer) ListGlobalSecrets(ctx context.Context, req *addonsv1.ListGlobalSecretsRequest) (*addonsv1.ListGlobalSecretsResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	scope := "global-secrets/" + team
	p, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListGlobalSecrets(ctx, team, p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListGlobalSecretsResponse{Secrets: make([]*addonsv1.GlobalSecretSummary, 0, len(list))}
	last := ""
	for _, g := range list {
		resp.Secrets = append(resp.Secrets, &addonsv1.GlobalSecretSummary{Id: g.ID, Name: g.Name, Description: g.Description, Type: g.Type,
			CreatedAt: timestamppb.New(g.CreatedAt), UpdatedAt: timestamppb.New(g.UpdatedAt)})
		last = g.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateGlobalSecret implements SecretsService.
func (s *SecretsServer) CreateGlobalSecret(ctx context.Context, req *addonsv1.CreateGlobalSecretRequest) (*addonsv1.CreateGlobalSecretResponse, error) {
	g, err := s.globalFrom(ctx, req.GetSpec())
	if err != nil {
		return nil, err
	}
	ev, err := globalSecretEvent("created", g)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateGlobalSecret(ctx, g, ev); err != nil {
		return nil, apierr.FromStore(err, "secret", g.ID)
	}
	return &addonsv1.CreateGlobalSecretResponse{Secret: globalSecretOf(g)}, nil
}

// PutGlobalSecret implements SecretsService.
func (s *SecretsServer) PutGlobalSecret(ctx context.Context, req *addonsv1.PutGlobalSecretRequest) (*addonsv1.PutGlobalSecretResponse, error) {
	want, err := s.globalFrom(ctx, req.GetSpec())
	if err != nil {
		return nil, err
	}
	for range 2 {
		g, err := s.store.UpdateGlobalSecret(ctx, want.TeamID, want.ID, func(g *GlobalSecret) ([]events.Event, error) {
			before := cloneGlobalSecret(*g)
			g.Name, g.Description, g.Type = want.Name, want.Description, want.Type
			g.Variables, g.Files = maps.Clone(want.Variables), maps.Clone(want.Files)
			return s.touchedGlobal(before, g)
		})
		if err == nil {
			return &addonsv1.PutGlobalSecretResponse{Secret: globalSecretOf(g)}, nil
		}
		if !errors.Is(err, apierr.ErrNotFound) {
			return nil, apierr.FromStore(err, "secret", want.ID)
		}
		ev, err := globalSecretEvent("created", want)
		if err != nil {
			return nil, err
		}
		if err = s.store.CreateGlobalSecret(ctx, want, ev); err == nil {
			return &addonsv1.PutGlobalSecretResponse{Secret: globalSecretOf(want)}, nil
		}
		if !errors.Is(err, apierr.ErrAlreadyExists) {
			return nil, apierr.FromStore(err, "secret", want.ID)
		}
	}
	return nil, apierr.FromStore(sqldb.ErrContended, "secret", want.ID)
}

// GetGlobalSecret implements SecretsService.
func (s *SecretsServer) GetGlobalSecret(ctx context.Context, req *addonsv1.GetGlobalSecretRequest) (*addonsv1.GetGlobalSecretResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	g, err := s.store.GetGlobalSecret(ctx, team, req.GetSecretId())
	if err != nil {
		return nil, apierr.FromStore(err, "secret", req.GetSecretId())
	}
	return &addonsv1.GetGlobalSecretResponse{Secret: globalSecretOf(g)}, nil
}

// PatchGlobalSecret implements SecretsService.
func (s *SecretsServer) PatchGlobalSecret(ctx context.Context, req *addonsv1.PatchGlobalSecretRequest) (*addonsv1.PatchGlobalSecretResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	p := req.GetPatch()
	var vars map[string]string
	var files map[string]SecretFileValue
	if p.GetSecrets() != nil {
		if vars, files, err = secretValuesFrom("secrets", p.GetSecrets().GetValues(), p.GetSecrets().GetFiles()); err != nil {
			return nil, err
		}
	}
	g, err := s.store.UpdateGlobalSecret(ctx, team, req.GetSecretId(), func(g *GlobalSecret) ([]events.Event, error) {
		before := cloneGlobalSecret(*g)
		if p.Description != nil {
			g.Description = p.GetDescription()
		}
		if p.GetSecrets() != nil {
			if err := patchSecretValues(&g.Variables, &g.Files, vars, files); err != nil {
				return nil, err
			}
		}
		return s.touchedGlobal(before, g)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "secret", req.GetSecretId())
	}
	return &addonsv1.PatchGlobalSecretResponse{Secret: globalSecretOf(g)}, nil
}

// DeleteGlobalSecret implements SecretsService.
func (s *SecretsServer) DeleteGlobalSecret(ctx context.Context, req *addonsv1.DeleteGlobalSecretRequest) (*addonsv1.DeleteGlobalSecretResponse, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return nil, err
	}
	g, err := s.store.GetGlobalSecret(ctx, team, req.GetSecretId())
	if err != nil {
		return nil, apierr.FromStore(err, "secret", req.GetSecretId())
	}
	ev, err := globalSecretEvent("deleted", g)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteGlobalSecret(ctx, team, g.ID, ev); err != nil {
		return nil, apierr.FromStore(err, "secret", g.ID)
	}
	return &addonsv1.DeleteGlobalSecretResponse{}, nil
}

// globalFrom validates a create or put request of a global secret.
func (s *SecretsServer) globalFrom(ctx context.Context, spec *addonsv1.GlobalSecretSpec) (GlobalSecret, error) {
	team, err := secretTeam(ctx)
	if err != nil {
		return GlobalSecret{}, err
	}
	id := slug.Make(spec.GetName())
	if id == "" {
		return GlobalSecret{}, apierr.InvalidField("name", "must contain a letter or a digit")
	}
	vars, files, err := secretValuesFrom("secrets", spec.GetSecrets().GetValues(), spec.GetSecrets().GetFiles())
	if err != nil {
		return GlobalSecret{}, err
	}
	return GlobalSecret{TeamID: team, ID: id, Name: spec.GetName(), Description: spec.GetDescription(), Type: spec.GetType(),
		Variables: vars, Files: files, CreatedAt: s.now(), UpdatedAt: s.now()}, nil
}

// touchedGlobal stamps a changed global secret and returns its event.
func (s *SecretsServer) touchedGlobal(before GlobalSecret, g *GlobalSecret) ([]events.Event, error) {
	if len(g.Variables) == 0 {
		g.Variables = nil
	}
	if len(g.Files) == 0 {
		g.Files = nil
	}
	g.UpdatedAt = before.UpdatedAt
	if maps.Equal(before.Variables, g.Variables) && maps.Equal(before.Files, g.Files) &&
		before.Name == g.Name && before.Description == g.Description && before.Type == g.Type {
		return nil, nil
	}
	g.UpdatedAt = s.now()
	ev, err := globalSecretEvent("updated", *g)
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// ---- events

// secretEventData is the data of slipway.addons.secret.* events: which
// group (or, with global, which team's global secret) changed. Values
// never travel in events.
type secretEventData struct {
	TeamID    string `json:"teamId"`
	ProjectID string `json:"projectId,omitempty"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Global    bool   `json:"global,omitempty"`
}

// secretGroupEvents are a group's lifecycle event and the shared
// project-resource event.
func secretGroupEvents(verb events.ResourceVerb, g SecretGroup) ([]events.Event, error) {
	ev, err := events.New(secretEventService, secretEventResource, string(verb), g.TeamID+"/"+g.ProjectID+"/"+g.ID,
		secretEventData{TeamID: g.TeamID, ProjectID: g.ProjectID, ID: g.ID, Name: g.Name})
	if err != nil {
		return nil, err
	}
	res, err := events.NewProjectResource(secretEventService, verb, events.ProjectResource{
		TeamID: g.TeamID, ProjectID: g.ProjectID, Kind: events.ResourceSecret, ID: g.ID, Name: g.Name, Description: g.Description, Type: g.Type,
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{ev, res}, nil
}

// globalSecretEvent is a global secret's lifecycle event.
func globalSecretEvent(verb string, g GlobalSecret) (events.Event, error) {
	return events.New(secretEventService, secretEventResource, verb, g.TeamID+"/"+g.ID,
		secretEventData{TeamID: g.TeamID, ID: g.ID, Name: g.Name, Global: true})
}

// DeleteProjectSecrets deletes a deleted project's secret groups, with
// their events; the secret groups' projects consumer calls it. It is
// idempotent: a redelivered event finds nothing.
func (s *SecretsServer) DeleteProjectSecrets(ctx context.Context, teamID, projectID string) error {
	list, err := s.store.ProjectSecretGroups(ctx, teamID, projectID)
	if err != nil {
		return err
	}
	for _, g := range list {
		if err := s.deleteGroup(ctx, g); err != nil {
			if e := apierr.From(err); e != nil && e.Code == codes.NotFound {
				continue
			}
			return err
		}
		s.log.InfoContext(ctx, "deleted a secret group of a deleted project", "secret", g.ID, "project", g.ProjectID)
	}
	return nil
}
