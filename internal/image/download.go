package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// GET /v2/images/{id}/file: the data from the first store copy that opens,
// whole or one byte range.

var rangeRE = regexp.MustCompile(`^bytes=(\d*)-(\d*)$`)
var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// parseRange returns offset and length for a single range of size bytes.
func parseRange(r *http.Request, size int64) (off, n int64, ranged bool, err error) {
	h := strings.TrimSpace(r.Header.Get("Range"))
	if h == "" {
		cr := strings.TrimSpace(r.Header.Get("Content-Range"))
		if cr == "" {
			return 0, size, false, nil
		}
		m := contentRangeRE.FindStringSubmatch(cr)
		if m == nil {
			return 0, 0, false, errs.E(errs.Invalid, "Invalid Content-Range header.")
		}
		h = "bytes=" + m[1] + "-" + m[2]
	}
	if strings.Contains(h, ",") {
		return 0, 0, false, errs.E(errs.Invalid, "Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.")
	}
	m := rangeRE.FindStringSubmatch(h)
	if m == nil || (m[1] == "" && m[2] == "") {
		return 0, 0, false, errs.E(errs.Invalid, "Invalid Range header.")
	}
	unsat := func() error {
		return &errs.Error{Kind: errs.BadRange, Msg: "The Range requested is not available.",
			Detail: fmt.Sprintf("Invalid start position in Range header. Start position MUST be in the inclusive range [0, %d].", max(size-1, 0))}
	}
	if m[1] == "" { // suffix
		k, _ := strconv.ParseInt(m[2], 10, 64)
		if k == 0 || size == 0 {
			return 0, 0, false, unsat()
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	start, _ := strconv.ParseInt(m[1], 10, 64)
	if start >= size {
		return 0, 0, false, unsat()
	}
	end := size - 1
	if m[2] != "" {
		e, _ := strconv.ParseInt(m[2], 10, 64)
		if e < start {
			return 0, 0, false, errs.E(errs.Invalid, "Invalid Range header.")
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true, nil
}

func (s *Service) download(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c := caller(r)
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if err == nil {
		err = readable(c, "download_image")
	}
	if err == nil && im.Status == StatusDeactivated && !c.IsAdmin() {
		err = errs.E(errs.Forbidden, "The requested image has been deactivated. Image data download is forbidden.")
	}
	if err != nil {
		return err
	}
	if len(im.Locations) == 0 || im.Size == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	size := *im.Size
	off, n, ranged, err := parseRange(r, size)
	if err != nil {
		return err
	}
	rc, err := s.openFirst(ctx, im, off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if im.Checksum != nil {
		h.Set("Content-MD5", *im.Checksum)
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	code := http.StatusOK
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		code = http.StatusPartialContent
	}
	w.WriteHeader(code)
	buf := make([]byte, store.ChunkSize)
	if _, err := io.CopyBuffer(w, rc, buf); err != nil {
		// the status is sent; the client sees a short body
		api.LoggerFrom(ctx).Warn("download interrupted", "image", im.ID, "err", err)
	}
	return nil
}

// openFirst reads from the first store copy that opens.
func (s *Service) openFirst(ctx context.Context, im *Image, off, n int64) (io.ReadCloser, error) {
	var last error
	for _, l := range im.Locations {
		st, ok := s.stores.Get(l.Store)
		if !ok {
			continue
		}
		rc, err := st.Get(ctx, im.ID, off, n)
		if err == nil {
			return rc, nil
		}
		api.LoggerFrom(ctx).Warn("image copy unreadable", "image", im.ID, "store", l.Store, "err", err)
		last = err
	}
	if last == nil || errs.Is(last, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "Image data for %s is not available in any store.", im.ID)
	}
	return nil, errs.Wrap(errs.Unavailable, last, "No store holding the image data is reachable.")
}
