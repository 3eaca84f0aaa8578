package auth

import (
	"slices"
	"strings"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	"github.com/slipwayhq/slipway/pkg/paging"
)

// pageOf pages a list the store returns whole (a team's members and roles,
// the caller's teams: short lists) with Northflank's options, the same
// per_page, page and cursor every other list takes: items ordered by id,
// after the cursor's id or at the page's offset. scope names the list, to
// which its cursors are bound (see paging.Cursors).
func pageOf[T any](c *paging.Cursors, scope string, items []T, id func(T) string, perPage, page int32, cursor string) ([]T, *apiv1.Pagination, error) {
	p, err := c.Parse(scope, perPage, page, cursor)
	if err != nil {
		return nil, nil, err
	}
	items = slices.SortedFunc(slices.Values(items), func(a, b T) int { return strings.Compare(id(a), id(b)) })
	start := p.Offset
	if p.After != "" {
		start = len(items)
		if i := slices.IndexFunc(items, func(v T) bool { return id(v) > p.After }); i >= 0 {
			start = i
		}
	}
	start = min(start, len(items))
	end := min(start+p.Limit, len(items))
	out, more := items[start:end], end < len(items)
	last := ""
	if len(out) > 0 {
		last = id(out[len(out)-1])
	}
	return out, c.Result(scope, len(out), more, last, len(items)), nil
}
