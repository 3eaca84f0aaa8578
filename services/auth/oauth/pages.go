package oauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// stateCookie is the sign-in cookie of the authorization pages. It carries
// the signed-in user (empty before sign-in) and a nonce the CSRF token is
// derived from; it is signed with a key derived from the global secret,
// HttpOnly, SameSite=Lax and limited to /oauth2/.
const stateCookie = "slw_oauth"

// pageState is the content of stateCookie.
type pageState struct {
	UserID  string `json:"u,omitempty"`
	Email   string `json:"m,omitempty"`
	Nonce   string `json:"n"`
	Expires int64  `json:"e"`
}

func (p *Provider) newState(userID, email string) pageState {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return pageState{
		UserID:  userID,
		Email:   email,
		Nonce:   base64.RawURLEncoding.EncodeToString(b[:]),
		Expires: p.now().Add(p.signInMaxAge).Unix(),
	}
}

func (p *Provider) mac(purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, p.cookieKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

func (p *Provider) writeState(w http.ResponseWriter, st pageState) {
	payload, _ := json.Marshal(st)
	value := base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(p.mac("state", payload))
	http.SetCookie(w, &http.Cookie{
		Name:     stateCookie,
		Value:    value,
		Path:     "/oauth2/",
		MaxAge:   int(p.signInMaxAge / time.Second),
		HttpOnly: true,
		Secure:   p.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// readState returns the request's verified, unexpired state.
func (p *Provider) readState(r *http.Request) (pageState, bool) {
	c, err := r.Cookie(stateCookie)
	if err != nil {
		return pageState{}, false
	}
	enc, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return pageState{}, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(enc)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, p.mac("state", payload)) {
		return pageState{}, false
	}
	var st pageState
	if json.Unmarshal(payload, &st) != nil || st.Nonce == "" || p.now().Unix() >= st.Expires {
		return pageState{}, false
	}
	return st, true
}

// csrfToken is bound to the state's nonce: a token is only good with the
// cookie it was issued beside, and every sign-in changes both.
func (p *Provider) csrfToken(st pageState) string {
	return base64.RawURLEncoding.EncodeToString(p.mac("csrf", []byte(st.Nonce)))
}

func (p *Provider) validCSRF(st pageState, token string) bool {
	got, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && token != "" && hmac.Equal(got, p.mac("csrf", []byte(st.Nonce)))
}

// scopeDescriptions say what each scope lets an application do.
var scopeDescriptions = map[string]string{
	"project_read":  "See your projects",
	"project_write": "Create, change and delete projects",
	"service_read":  "See services",
	"service_write": "Create, change, deploy and delete services",
	"job_read":      "See jobs",
	"job_write":     "Create, change, run and delete jobs",
	"addon_read":    "See addons",
	"addon_write":   "Create, change and delete addons",
	"secret_read":   "See secrets",
	"secret_write":  "Create, change and delete secrets",
	"team_read":     "See the team's settings, members and roles",
}

type scopeView struct{ Name, Description string }

func describeScopes(scopes []string) []scopeView {
	out := make([]scopeView, 0, len(scopes))
	for _, s := range scopes {
		d, ok := scopeDescriptions[s]
		if !ok {
			d = s
		}
		out = append(out, scopeView{Name: s, Description: d})
	}
	return out
}

type pageData struct {
	Client     *Client
	ClientName string
	Scopes     []scopeView
	CSRF       string
	Email      string
	Error      string
	Message    string
}

const layout = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{block "title" .}}Slipway{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;justify-content:center}
main{background:#fff;margin-top:10vh;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:22rem}
h1{font-size:1.25rem;margin-top:0}label{display:block;margin:.75rem 0 .25rem}
input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem}
button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}.muted{color:#666;font-size:.9rem}
ul{padding-left:1.2rem}
</style></head>
<body><main>{{block "main" .}}{{end}}</main></body></html>`

var (
	signInPage = template.Must(template.Must(template.New("sign-in").Parse(layout)).Parse(`
{{define "title"}}Sign in · Slipway{{end}}
{{define "main"}}
<h1>Sign in to Slipway</h1>
<p class="muted"><strong>{{.ClientName}}</strong> wants to access your Slipway account.</p>
{{with .Error}}<p class="error" role="alert">{{.}}</p>{{end}}
<form method="post" action="" autocomplete="on">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="action" value="sign_in">
<label for="email">Email</label>
<input id="email" type="email" name="email" value="{{.Email}}" required autofocus autocomplete="username">
<label for="password">Password</label>
<input id="password" type="password" name="password" required autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
{{end}}`))

	consentPage = template.Must(template.Must(template.New("consent").Parse(layout)).Parse(`
{{define "title"}}Authorize {{.ClientName}} · Slipway{{end}}
{{define "main"}}
<h1>Authorize {{.ClientName}}</h1>
<p>Signed in as <strong>{{.Email}}</strong>.</p>
<p><strong>{{.ClientName}}</strong> asks to act on team <strong>{{.Client.TeamID}}</strong> with your account, and to:</p>
<ul>{{range .Scopes}}<li>{{.Description}} <span class="muted">({{.Name}})</span></li>{{else}}<li>nothing beyond identifying the grant</li>{{end}}</ul>
<p class="muted">It can never do more than your own role in the team allows.</p>
<form method="post" action="">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="action" value="consent">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
<form method="post" action="">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="action" value="switch_user">
<button type="submit" class="muted">Not you? Sign in as someone else</button>
</form>
{{end}}`))

	errorPage = template.Must(template.Must(template.New("error").Parse(layout)).Parse(`
{{define "title"}}Error · Slipway{{end}}
{{define "main"}}<h1>Something went wrong</h1><p class="error" role="alert">{{.Message}}</p>{{end}}`))
)

func (p *Provider) render(w http.ResponseWriter, status int, t *template.Template, data pageData) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p *Provider) renderError(w http.ResponseWriter, status int, msg string) {
	p.render(w, status, errorPage, pageData{Message: msg})
}
