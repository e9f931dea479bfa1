package image

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
)

// kv is one member of an ordered JSON object.
type kv struct {
	k string
	v any
}

// object is a JSON object that keeps its member order, so bodies read like
// Glance's (custom properties first, stores last).
type object []kv

// MarshalJSON implements json.Marshaler.
func (o object) MarshalJSON() ([]byte, error) { return appendJSON(nil, o), nil }

// appendJSON appends v as compact JSON, byte for byte what encoding/json
// writes for it. Objects, lists of objects and the scalar types of image
// bodies are written in one pass: going through json.Marshal, every nested
// object's MarshalJSON output is validated and compacted again at each
// level, which made a page of 25 images cost as much JSON work as ~100
// shows. Anything else goes through encoding/json.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, v)
	case *string:
		return appendStrp(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case *int64:
		return appendInt64p(b, v)
	case object:
		b = append(b, '{')
		for i, m := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.k)
			b = append(b, ':')
			b = appendJSON(b, m.v)
		}
		return append(b, '}')
	case []object:
		return appendList(b, v, func(b []byte, o object) []byte { return appendJSON(b, o) })
	case []string:
		if v == nil {
			return append(b, "null"...)
		}
		return appendList(b, v, func(b []byte, s string) []byte { return appendString(b, s) })
	}
	out, err := json.Marshal(v)
	if err != nil {
		// Only unsupported types fail here, and bodies are built from the
		// types above and maps and slices of them.
		panic("image: encoding a response: " + err.Error())
	}
	return append(b, out...)
}

// appendList appends items as a JSON array, each written by each.
func appendList[T any](b []byte, items []T, each func([]byte, T) []byte) []byte {
	b = append(b, '[')
	for i, x := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = each(b, x)
	}
	return append(b, ']')
}

// jsonPlain marks the bytes encoding/json writes as they are: printable
// ASCII except the quote, the backslash and the HTML characters it escapes.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends the concatenation of parts as a JSON string.
// Plain strings are copied as they are; anything else goes through
// encoding/json so the escaping (HTML characters, control characters,
// invalid UTF-8) stays identical.
func appendString(b []byte, parts ...string) []byte {
	for _, s := range parts {
		for i := 0; i < len(s); i++ {
			if !jsonPlain[s[i]] {
				out, _ := json.Marshal(strings.Join(parts, ""))
				return append(b, out...)
			}
		}
	}
	b = append(b, '"')
	for _, s := range parts {
		b = append(b, s...)
	}
	return append(b, '"')
}

func appendStrp(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

func appendInt64p(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *n, 10)
}

// buffers recycles the buffers list pages are written into: a page is
// tens of KiB, and allocating one per request was most of the garbage a
// list made.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

// putBuffer returns a buffer once its response is written; a very large
// one is left to the collector.
func putBuffer(b *[]byte) {
	if cap(*b) <= 1<<20 {
		buffers.Put(b)
	}
}

// writeBody writes a JSON response body, with its length: a body of
// unknown length would be sent chunked.
func writeBody(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// hiddenProps are bookkeeping properties never shown.
var hiddenProps = map[string]bool{propStageHost: true}

// appendView appends the image body Glance v2 renders for caller c:
// custom properties first (sorted), then Glance's keys in its order. Where
// the data lives (locations, direct_url: file paths, bucket names) is
// shown only when show_multiple_locations / show_image_direct_url are on
// and c may read the image's locations (get_image_location); stores, to
// everyone, as Glance does. The body is written straight into b: a page
// of images is most of a list's cost.
func (s *Service) appendView(b []byte, c *auth.Caller, im *Image) []byte {
	keys := make([]string, 0, len(im.Props))
	for k := range im.Props {
		if !hiddenProps[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b = append(b, '{')
	for _, k := range keys {
		b = append(appendString(b, k), ':')
		b = append(appendString(b, im.Props[k]), ',')
	}
	b = appendStrp(append(b, `"name":`...), im.Name)
	b = appendStrp(append(b, `,"disk_format":`...), im.DiskFormat)
	b = appendStrp(append(b, `,"container_format":`...), im.ContainerFormat)
	b = appendString(append(b, `,"visibility":`...), im.Visibility)
	b = appendInt64p(append(b, `,"size":`...), im.Size)
	b = appendInt64p(append(b, `,"virtual_size":`...), im.VirtualSize)
	b = appendString(append(b, `,"status":`...), im.Status)
	b = appendStrp(append(b, `,"checksum":`...), im.Checksum)
	b = strconv.AppendBool(append(b, `,"protected":`...), im.Protected)
	b = strconv.AppendInt(append(b, `,"min_ram":`...), im.MinRAM, 10)
	b = strconv.AppendInt(append(b, `,"min_disk":`...), im.MinDisk, 10)
	b = appendString(append(b, `,"owner":`...), im.Owner)
	b = strconv.AppendBool(append(b, `,"os_hidden":`...), im.Hidden)
	b = appendStrp(append(b, `,"os_hash_algo":`...), im.HashAlgo)
	b = appendStrp(append(b, `,"os_hash_value":`...), im.HashValue)
	b = appendString(append(b, `,"id":`...), im.ID)
	b = appendIsoTime(append(b, `,"created_at":`...), im.CreatedAt)
	b = appendIsoTime(append(b, `,"updated_at":`...), im.UpdatedAt)
	showAll, showDirect := s.cfg.Image.ShowMultipleLocations, s.cfg.Image.ShowImageDirectURL
	if (showAll || showDirect) && enforce(c, "get_image_location", im) != nil {
		showAll, showDirect = false, false
	}
	if showAll {
		b = append(b, `,"locations":[`...)
		for i, l := range im.Locations {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(append(b, `{"url":`...), l.URL)
			b = append(appendString(append(b, `,"metadata":{"store":`...), l.Store), "}}"...)
		}
		b = append(b, ']')
	}
	if showDirect && len(im.Locations) > 0 {
		b = appendString(append(b, `,"direct_url":`...), im.Locations[0].URL)
	}
	b = appendJSON(append(b, `,"tags":`...), im.Tags)
	b = appendString(append(b, `,"self":`...), "/v2/images/", im.ID)
	b = appendString(append(b, `,"file":`...), "/v2/images/", im.ID, "/file")
	b = append(b, `,"schema":"/v2/schemas/image"`...)
	switch len(im.Locations) {
	case 0:
	case 1:
		b = appendString(append(b, `,"stores":`...), im.Locations[0].Store)
	default:
		b = appendString(append(b, `,"stores":`...), strings.Join(im.StoreIDs(), ","))
	}
	return append(b, '}')
}

// isoLayout is Glance's timestamp format (seconds, Z).
const isoLayout = "2006-01-02T15:04:05Z"

func isoTime(t db.Timestamp) string { return t.Time.UTC().Format(isoLayout) }

func appendIsoTime(b []byte, t db.Timestamp) []byte {
	return append(t.Time.UTC().AppendFormat(append(b, '"'), isoLayout), '"')
}
