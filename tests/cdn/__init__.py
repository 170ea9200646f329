"""The CDN: the purge outbox, CloudFront invalidations, the deploy and the processes sharing it."""
