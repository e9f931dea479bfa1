// Package interop is Ashlar's interop suite: it starts the ashlar binary on
// 127.0.0.1 and drives it with the real OpenStack command-line clients,
// tempest and real OpenStack services (glance-api, keystone, cinder-api).
//
// The tests run only with ASHLAR_INTEROP=1 (make test sets it); otherwise
// every test skips. scripts/interop.sh runs one part alone. Every process
// the suite starts listens on 127.0.0.1 in the port range 15000-15999 and
// is stopped by its pid when the test ends, pass or fail. See
// docs/interop.md.
package interop
