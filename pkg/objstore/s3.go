package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config says where an S3 store keeps its objects.
type S3Config struct {
	// Endpoint is the server: "s3.us-west-2.amazonaws.com" (https is
	// assumed without a scheme) or "http://127.0.0.1:9000".
	Endpoint string
	// Region signs the requests (SigV4 is region-scoped); "us-east-1"
	// when empty, which most self-hosted servers expect.
	Region string
	// Bucket holds the objects; it must exist.
	Bucket string
	// Prefix is prepended to every key ("backups" stores key "a" as
	// "backups/a"); slashes around it are ignored.
	Prefix string
	// AccessKey and SecretKey are the credentials.
	AccessKey string
	SecretKey string
	// PathStyle addresses the bucket in the path (http://host/bucket/key)
	// rather than the host name (http://bucket.host/key). Self-hosted
	// servers (MinIO, Garage, Ceph, versitygw) need it; DefaultPathStyle
	// picks it from the endpoint.
	PathStyle bool
	// HTTPClient, when set, carries the requests (tests; proxies).
	HTTPClient *http.Client
}

// DefaultPathStyle reports whether endpoint needs path-style addressing:
// every endpoint but Amazon's own, whose virtual-hosted style is the one
// AWS keeps for all buckets.
func DefaultPathStyle(endpoint string) bool {
	u, err := endpointURL(endpoint)
	if err != nil {
		return true
	}
	host := strings.ToLower(u.Hostname())
	return host != "amazonaws.com" && !strings.HasSuffix(host, ".amazonaws.com")
}

// endpointURL parses an endpoint, defaulting the scheme to https.
func endpointURL(endpoint string) (*url.URL, error) {
	e := strings.TrimSpace(endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("want [http[s]://]host[:port] without path, query or user")
	}
	return u, nil
}

// S3 is a Store in a bucket of an S3-compatible server.
//
// Requests are signed with Signature Version 4 only: the AWS SDK for Go v2
// (chosen because it is Amazon's own, modular, and has no Signature V2 at
// all) never falls back to V2, which Cloudflare R2 and current AWS refuse
// (reference §3.5, coolify#9792). Checksums are sent only where S3 requires
// them, so servers that do not implement the SDK's newer flexible checksums
// (most S3-compatible ones) accept the requests.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string // "" or ends with "/"
}

// partSize is the size of each part of a multipart upload; it doubles every
// partsPerStep parts, so S3's limit of 10,000 parts is reached only beyond
// several terabytes while small backups still need one 16 MiB buffer.
const (
	partSize     = 16 << 20
	partsPerStep = 1000
)

// NewS3 returns a store over cfg. It does not contact the server (see
// Probe for a check that the configuration works).
func NewS3(cfg S3Config) (*S3, error) {
	u, err := endpointURL(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("objstore: endpoint %q: %w", cfg.Endpoint, err)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("objstore: bucket is required")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("objstore: access key and secret key are required")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("objstore: prefix: %w", err)
		}
		prefix += "/"
	}
	creds := aws.Credentials{AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey, Source: "slipway backup destination"}
	opts := s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(u.Scheme + "://" + u.Host),
		UsePathStyle: cfg.PathStyle,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		// S3 Express sessions are Amazon-only and would add a call.
		DisableS3ExpressSessionAuth: aws.Bool(true),
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	client := s3.New(opts)
	return &S3{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

func (s *S3) full(key string) string { return s.prefix + key }

// Put implements Store. Objects up to one part go up in a single PutObject;
// larger ones as a multipart upload, which S3 makes visible only when it is
// completed and which is aborted on any error, so in both cases the object
// appears whole or not at all. Each request carries the SHA-256 of its body
// in its signature, so the server refuses a part damaged on the way.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, string, error) {
	if err := CheckKey(key); err != nil {
		return 0, "", err
	}
	h := sha256.New()
	src := io.TeeReader(ctxReader{ctx: ctx, r: r}, h)
	size := int64(partSize)
	buf := make([]byte, size)
	n, err := io.ReadFull(src, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, "", fmt.Errorf("objstore: put %s: read: %w", key, err)
	}
	if n < len(buf) { // all of it fits in one request
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(s.full(key)),
			Body:          bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(int64(n)),
			ContentType:   aws.String("application/octet-stream"),
		})
		if err != nil {
			return 0, "", s.err("put", key, err)
		}
		return int64(n), hex.EncodeToString(h.Sum(nil)), nil
	}
	total, err := s.multipart(ctx, key, src, buf)
	if err != nil {
		return 0, "", err
	}
	return total, hex.EncodeToString(h.Sum(nil)), nil
}

// multipart uploads first (a full part already read) and the rest of src.
func (s *S3) multipart(ctx context.Context, key string, src io.Reader, first []byte) (int64, error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(s.full(key)),
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return 0, s.err("put", key, err)
	}
	uploadID := created.UploadId
	abort := func(cause error) error {
		// Not ctx: the upload must be cleaned up even when ctx ended it.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(s.full(key)), UploadId: uploadID,
		}); aerr != nil {
			// The part data stays on the server until its lifecycle rules
			// remove it; it is never visible as the object.
			return fmt.Errorf("%w (and aborting the upload failed: %v)", cause, s.err("abort", key, aerr))
		}
		return cause
	}
	var parts []types.CompletedPart
	var total int64
	buf := first
	n := len(first)
	for num := int32(1); ; num++ {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(s.full(key)),
			UploadId:      uploadID,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return 0, abort(s.err("put", key, err))
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		total += int64(n)
		if num%partsPerStep == 0 {
			buf = make([]byte, 2*len(buf))
		}
		n, err = io.ReadFull(src, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, abort(fmt.Errorf("objstore: put %s: read: %w", key, err))
		}
		if num >= 10000 {
			return 0, abort(fmt.Errorf("objstore: put %s: larger than an S3 multipart upload can hold", key))
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, abort(fmt.Errorf("objstore: put %s: %w", key, err))
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.full(key)),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return 0, abort(s.err("put", key, err))
	}
	return total, nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.full(key))})
	if err != nil {
		return nil, s.err("get", key, err)
	}
	return out.Body, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.full(key))})
	if err != nil {
		return Object{}, s.err("stat", key, err)
	}
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength)}
	if out.LastModified != nil {
		o.ModTime = out.LastModified.UTC()
	}
	return o, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.full(key))})
	if err != nil && !errors.Is(s.err("delete", key, err), ErrNotFound) {
		return s.err("delete", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.full(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.err("list", prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if CheckKey(k) != nil {
				continue // written by something else, not a key of ours
			}
			obj := Object{Key: k, Size: aws.ToInt64(o.Size)}
			if o.LastModified != nil {
				obj.ModTime = o.LastModified.UTC()
			}
			out = append(out, obj)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Probe checks that the store works end to end: it writes a small object
// under probeKey, reads it back, compares and deletes it. It is what a
// destination is checked with when it is added, so that a wrong key,
// region or bucket is reported then rather than by a failed backup later.
func Probe(ctx context.Context, st Store, probeKey string) error {
	payload := []byte("slipway backup destination check " + randomSuffix())
	if _, _, err := st.Put(ctx, probeKey, bytes.NewReader(payload)); err != nil {
		return err
	}
	rc, err := st.Get(ctx, probeKey)
	if err != nil {
		_ = st.Delete(context.WithoutCancel(ctx), probeKey)
		return err
	}
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(payload))+1))
	_ = rc.Close()
	if err == nil && !bytes.Equal(got, payload) {
		err = &RemoteError{Op: "get", Key: probeKey, Code: "ContentMismatch", Message: "the object read back differs from the one written"}
	}
	if derr := st.Delete(ctx, probeKey); err == nil && derr != nil {
		err = derr
	}
	return err
}

// RemoteError is a request the S3 server refused or that did not reach
// it. Code is the server's error code ("SignatureDoesNotMatch",
// "NoSuchBucket", ...) or one of the codes below for failures without one.
type RemoteError struct {
	Op, Key string
	// Code is S3's error code, or "Unreachable" (no answer: DNS, refused
	// connection, TLS, time-out) or "ContentMismatch" (Probe).
	Code string
	// Status is the HTTP status, 0 without an answer.
	Status int
	// Message is the server's message, for logs of the operator only.
	Message string
	Err     error
}

// Error implements error.
func (e *RemoteError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("objstore: s3 %s %s: %s (HTTP %d): %s", e.Op, e.Key, e.Code, e.Status, e.Message)
	}
	return fmt.Sprintf("objstore: s3 %s %s: %s: %s", e.Op, e.Key, e.Code, e.Message)
}

// Unwrap returns the SDK's error.
func (e *RemoteError) Unwrap() error { return e.Err }

// Auth reports whether the server refused the credentials or their rights
// (wrong access key, wrong secret, wrong region in the signature, no
// permission on the bucket).
func (e *RemoteError) Auth() bool {
	switch e.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AuthorizationHeaderMalformed",
		"InvalidToken", "ExpiredToken", "InvalidSecurity", "AllAccessDisabled", "AuthorizationQueryParametersError",
		// versitygw's (404) answer to an access key it does not know.
		"XAdminUserNotFound":
		return true
	}
	return e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized
}

// err turns an SDK error into ErrNotFound or a RemoteError.
func (s *S3) err(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("objstore: s3 %s %s: %w", op, key, err)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return ErrNotFound
	}
	re := &RemoteError{Op: op, Key: key, Err: err}
	var respErr interface{ HTTPStatusCode() int }
	if errors.As(err, &respErr) {
		re.Status = respErr.HTTPStatusCode()
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		re.Code, re.Message = apiErr.ErrorCode(), apiErr.ErrorMessage()
		if re.Code == "NoSuchKey" || (re.Code == "NotFound" && op != "list") {
			return ErrNotFound
		}
		return re
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if re.Status == 0 && (errors.As(err, &netErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr)) {
		re.Code, re.Message = "Unreachable", "no answer from the endpoint"
		return re
	}
	if re.Status == 0 {
		re.Code, re.Message = "Unreachable", "the request did not complete"
		return re
	}
	re.Code, re.Message = http.StatusText(re.Status), "unexpected answer"
	return re
}
