// Package policy decides who may do what. Each service keeps one Table of
// its actions; rules are built from the admin / member / reader roles and
// project ownership, as in the default policies of Cinder and Glance.
package policy

import (
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Target describes the resource an action touches.
type Target struct {
	// ProjectID owns the resource; empty for actions on collections.
	ProjectID string
}

// Rule decides one action for a caller and a target.
type Rule func(c *auth.Caller, t Target) bool

// Table maps action names (e.g. "volume:create") to rules.
type Table map[string]Rule

// The building blocks.
var (
	// Admin allows admins only.
	Admin Rule = func(c *auth.Caller, _ Target) bool { return c.IsAdmin() }
	// Anyone allows any authenticated caller.
	Anyone Rule = func(c *auth.Caller, _ Target) bool { return c != nil }
	// Reader allows readers (and therefore members and admins) of the
	// target's project, and admins of any project.
	Reader Rule = func(c *auth.Caller, t Target) bool { return c.IsAdmin() || owns(c, t) && c.HasRole(auth.RoleReader) }
	// Member allows members of the target's project, and admins.
	Member Rule = func(c *auth.Caller, t Target) bool { return c.IsAdmin() || owns(c, t) && c.HasRole(auth.RoleMember) }
)

// owns: an empty target project means "the caller's own project" (creates, lists).
func owns(c *auth.Caller, t Target) bool {
	return c != nil && (t.ProjectID == "" || t.ProjectID == c.ProjectID)
}

// Enforce returns nil when the table allows action, else an errs.Forbidden
// with the message the OpenStack services use. An unknown action is denied.
func (tb Table) Enforce(c *auth.Caller, action string, t Target) error {
	rule, ok := tb[action]
	if ok && c != nil && rule(c, t) {
		return nil
	}
	return errs.E(errs.Forbidden, "Policy doesn't allow %s to be performed.", action)
}

// Allowed reports whether the table allows action.
func (tb Table) Allowed(c *auth.Caller, action string, t Target) bool {
	return tb.Enforce(c, action, t) == nil
}

// Foreign reports whether t belongs to a project other than the caller's
// and the caller is no admin: such resources are invisible to the caller.
func Foreign(c *auth.Caller, t Target) bool {
	return t.ProjectID != "" && !c.IsAdmin() && (c == nil || t.ProjectID != c.ProjectID)
}

// EnforceHidden is Enforce for actions on one resource, answering notFound
// (the service's own "no such volume/image" error) instead of Forbidden
// when the resource belongs to another project: Cinder and Glance answer
// 404 there, never revealing that the resource exists.
func (tb Table) EnforceHidden(c *auth.Caller, action string, t Target, notFound error) error {
	if Foreign(c, t) {
		return notFound
	}
	return tb.Enforce(c, action, t)
}
