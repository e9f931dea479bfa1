"""Keystone-less request context for the real glance-api the interop suite
starts behind Ashlar's volume service (test/interop/peers_test.go).

Glance's own keystone-less pipeline gives requests no project, which breaks
image import and the admin-only store details. This filter gives every
request a project and roles:
  * X-Auth-Token "user:project[:role,role]" (noauth style), or
  * otherwise (for example a real Ashlar token sent by Ashlar's volume
    service) X-User-Id / X-Project-Id / X-Roles headers, defaulting to user
    admin, project admin, roles admin,member,reader.
"""
from glance.api.middleware.context import BaseContextMiddleware
import glance.context


class InteropNoAuth(BaseContextMiddleware):
    def process_request(self, req):
        h = req.headers
        user = h.get('X-User-Id', 'admin')
        project = h.get('X-Project-Id', 'admin')
        roles = ['admin', 'member', 'reader']
        if h.get('X-Roles'):
            roles = [r.strip().lower() for r in h['X-Roles'].split(',') if r.strip()]
        token = h.get('X-Auth-Token') or ''
        if ':' in token:
            parts = token.split(':')
            user, project = parts[0], parts[1]
            if len(parts) > 2:
                roles = [r for r in parts[2].split(',') if r]
        req.context = glance.context.RequestContext(
            user_id=user, project_id=project, roles=roles,
            request_id=h.get('X-Openstack-Request-Id'))


def filter_factory(global_conf, **local_conf):
    def _filter(app):
        return InteropNoAuth(app)
    return _filter
