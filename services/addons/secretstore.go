package addons

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
)

// SecretGroup is a project's secret group: variables and files, and links
// to the project's addons, that the project's jobs and services get when
// they start (those its restrictions admit), merged with the other
// groups by priority.
type SecretGroup struct {
	TeamID, ProjectID, ID string
	Name, Description     string
	Tags                  []string
	// Type is "secret" or "config" (Northflank's permission type; both
	// are sealed at rest alike).
	Type string
	// SecretType is where the group is injected: "environment" (runtime),
	// "arguments" (builds) or "environment-arguments" (both).
	SecretType string
	// Priority, 0 to 100: of two groups giving one key, the higher wins.
	Priority     int
	Restrictions SecretRestrictions
	// Addons are the linked addons, by addon id.
	Addons []SecretAddonLink
	// Variables and Files are the group's own values.
	Variables map[string]string
	Files     map[string]SecretFileValue
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version counts writes (optimistic concurrency); the store's.
	Version int64
}

// SecretRestrictions limit the workloads a group applies to.
type SecretRestrictions struct {
	// Restricted: the group applies only to Objects and to workloads with
	// Tags; otherwise to every job and service of the project.
	Restricted bool           `json:"restricted"`
	Objects    []SecretObject `json:"nfObjects,omitempty"`
	Tags       []string       `json:"tags,omitempty"`
	// TagMatch is "and" (every tag) or "or" (any tag; the default).
	TagMatch string `json:"tagMatchCondition,omitempty"`
}

// SecretObject is a service or job a group is restricted to.
type SecretObject struct {
	ID   string `json:"id"`
	Type string `json:"type"` // "service" or "job"
}

// SecretAddonLink links an addon's keys to a group.
type SecretAddonLink struct {
	AddonID string           `json:"addonId"`
	Keys    []SecretAddonKey `json:"keys"`
}

// SecretAddonKey is one linked key and the aliases it is also given
// under.
type SecretAddonKey struct {
	Name    string   `json:"keyName"`
	Aliases []string `json:"aliases,omitempty"`
}

// SecretFileValue is a secret file's content: base64 Data and the
// original Encoding.
type SecretFileValue struct {
	Data     string `json:"data"`
	Encoding string `json:"encoding,omitempty"`
}

// GlobalSecret is a team's global secret: variables and files kept for
// the team, outside any project.
type GlobalSecret struct {
	TeamID, ID        string
	Name, Description string
	Type              string
	Variables         map[string]string
	Files             map[string]SecretFileValue
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Version           int64
}

// SecretStore keeps secret groups and global secrets.
//
// Contract (storetest.RunSecrets checks it on every engine):
//   - Values (Variables and Files) are sealed at rest; everything else is
//     stored as given and returned equal (nil and empty collections alike
//     read back as nil).
//   - Create fails with ErrAlreadyExists when the id is taken in its
//     parent (project, or team for global secrets) and writes the events
//     given in the same transaction; nothing is written on failure.
//   - Get, Update and Delete fail with ErrNotFound for a missing id,
//     which includes another team's or project's.
//   - Update runs mutate on a copy of the stored row and writes the
//     result with its events in one transaction, retrying mutate when a
//     concurrent writer won; identity, creation time and version are the
//     store's. A mutate that changes nothing writes nothing and its
//     events are dropped. A mutate error is returned as is.
//   - List pages by id; ProjectSecretGroups returns all of a project's
//     groups, by id.
type SecretStore interface {
	CreateSecretGroup(ctx context.Context, g SecretGroup, evs ...events.Event) error
	GetSecretGroup(ctx context.Context, team, project, id string) (SecretGroup, error)
	// ListSecretGroups returns a page of a project's secret groups ordered
	// by id, whether more follow, and how many the project has.
	ListSecretGroups(ctx context.Context, team, project string, page paging.Page) ([]SecretGroup, bool, int, error)
	ProjectSecretGroups(ctx context.Context, team, project string) ([]SecretGroup, error)
	UpdateSecretGroup(ctx context.Context, team, project, id string, mutate func(*SecretGroup) ([]events.Event, error)) (SecretGroup, error)
	DeleteSecretGroup(ctx context.Context, team, project, id string, evs ...events.Event) error

	CreateGlobalSecret(ctx context.Context, g GlobalSecret, evs ...events.Event) error
	GetGlobalSecret(ctx context.Context, team, id string) (GlobalSecret, error)
	// ListGlobalSecrets returns a page of a team's global secrets ordered
	// by id, whether more follow, and how many the team has.
	ListGlobalSecrets(ctx context.Context, team string, page paging.Page) ([]GlobalSecret, bool, int, error)
	UpdateGlobalSecret(ctx context.Context, team, id string, mutate func(*GlobalSecret) ([]events.Event, error)) (GlobalSecret, error)
	DeleteGlobalSecret(ctx context.Context, team, id string, evs ...events.Event) error
}

// cloneSecretGroup copies g deeply enough that mutating the copy leaves
// g alone.
func cloneSecretGroup(g SecretGroup) SecretGroup {
	g.Tags = slices.Clone(g.Tags)
	g.Restrictions.Objects = slices.Clone(g.Restrictions.Objects)
	g.Restrictions.Tags = slices.Clone(g.Restrictions.Tags)
	links := make([]SecretAddonLink, 0, len(g.Addons))
	for _, l := range g.Addons {
		keys := make([]SecretAddonKey, 0, len(l.Keys))
		for _, k := range l.Keys {
			keys = append(keys, SecretAddonKey{Name: k.Name, Aliases: slices.Clone(k.Aliases)})
		}
		links = append(links, SecretAddonLink{AddonID: l.AddonID, Keys: keys})
	}
	if g.Addons != nil {
		g.Addons = links
	}
	g.Variables = maps.Clone(g.Variables)
	g.Files = maps.Clone(g.Files)
	return g
}

// cloneGlobalSecret copies g deeply.
func cloneGlobalSecret(g GlobalSecret) GlobalSecret {
	g.Variables = maps.Clone(g.Variables)
	g.Files = maps.Clone(g.Files)
	return g
}
