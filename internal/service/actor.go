package service

import "context"

type actorKey struct{}

// WithActor returns ctx carrying the principal on whose behalf the CA's
// methods run (the admin API's authenticated caller), so that the log line
// of every change names who made it ("by").
func WithActor(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, actorKey{}, principal)
}

// actor returns the principal WithActor put into ctx, or "".
func actor(ctx context.Context) string {
	p, _ := ctx.Value(actorKey{}).(string)
	return p
}

// change writes the log line of a change: msg and args, and "by" with the
// principal that made it when ctx names one (a change the CA makes by
// itself, such as a scheduled CRL, has none).
func (c *CA) change(ctx context.Context, msg string, args ...any) {
	if who := actor(ctx); who != "" {
		args = append(args, "by", who)
	}
	c.logger.Info(msg, args...)
}
