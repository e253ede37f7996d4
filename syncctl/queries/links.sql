-- Links between local customers and tritonX numbers: anomalies, adoption, repairs, bootstrap.

-- name: link_anomalies
-- each kind of link anomaly with its number of customers
SELECT anomaly, customers FROM sync.link_anomaly;

-- name: adoptable
-- local customers that tritonX's e-mail names unambiguously, with the linked row to adopt into
-- (keys as sync.shown_key shows them: NULL for a text key)
SELECT local_key, linked_key, customer_number FROM sync.adoptable_customer
ORDER BY local_id, customer_number;

-- name: record_adoption_conflicts
-- record a link conflict for each linked customer whose e-mail several local customers have
SELECT sync.record_adoption_conflicts();

-- name: adopt
-- adopt the local customer tritonX's e-mail names into the customer linked to a number
-- (audited)
SELECT sync.adopt_for_number(%(number)s, %(actor)s);

-- name: misdirected_links
-- local customers linked to a merged-away number, with the survivor
SELECT customer_number, survivor_number FROM sync.misdirected_links();

-- name: repair_redirected_link
-- move a link from a merged-away number to its survivor (audited); the outcome
SELECT sync.repair_redirected_link(%(old)s, %(actor)s) ->> 'outcome';

-- name: bootstrap_counts
-- customers linked and unlinked (on the mapped customer table), and open link conflicts
SELECT linked, unlinked, open_conflicts FROM sync.link_counts();

-- name: sample_linked_numbers
-- a random sample of linked tritonX numbers, to ask tritonX about
SELECT customer_number FROM sync.sample_linked_numbers(%(limit)s);
