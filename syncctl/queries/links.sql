-- Links between local customers and tritonX numbers: anomalies, adoption, repairs, bootstrap.

-- name: link_anomalies
-- each kind of link anomaly with its number of customers
SELECT anomaly, customers FROM sync.link_anomaly;

-- name: adoptable
-- local customers that tritonX's e-mail names unambiguously, with the linked row to adopt into
SELECT local_id, linked_id, customer_number FROM sync.adoptable_customer ORDER BY local_id;

-- name: record_adoption_conflicts
-- record a link conflict for each linked customer whose e-mail several local customers have
SELECT sync.record_adoption_conflicts();

-- name: adopt
-- adopt a local customer into its linked tritonX customer (audited)
SELECT sync.adopt_local_customer(%(local_id)s, %(linked_id)s, %(actor)s);

-- name: misdirected_links
-- local customers linked to a merged-away number, with the survivor
SELECT c.customer_number, r.survivor_number
FROM shop.customer c JOIN sync.redirect r ON r.old_number = c.customer_number
ORDER BY c.id;

-- name: repair_redirected_link
-- move a link from a merged-away number to its survivor (audited); the outcome
SELECT sync.repair_redirected_link(%(old)s, %(actor)s) ->> 'outcome';

-- name: bootstrap_counts
-- customers linked and unlinked, and open link conflicts, after a bootstrap
SELECT count(*) FILTER (WHERE customer_number IS NOT NULL) AS linked,
       count(*) FILTER (WHERE customer_number IS NULL) AS unlinked,
       (SELECT count(*) FROM sync.link_conflict WHERE resolved_at IS NULL) AS conflicts
FROM shop.customer;

-- name: sample_linked_numbers
-- a random sample of linked tritonX numbers, to ask tritonX about
SELECT customer_number FROM shop.customer
WHERE customer_number IS NOT NULL
ORDER BY random()
LIMIT %(limit)s;
