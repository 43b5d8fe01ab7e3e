-- The address search's index, replaced. 0002's trigram bloom filter (recipient_ngrams)
-- skipped nothing on realistic addresses: every granule of 8,192 rows holds nearly every
-- trigram of digits and common names, so a search for a real address read 591 of 592
-- granules. A text (inverted) index of the lowercased recipient's trigrams answers
-- `lowerUTF8(recipient) LIKE '%taro123@%'` by reading only the granules that hold every
-- trigram of the pattern: 163 ms -> 10 ms at 4.6 million deliveries (bench/README.md).
-- Text indexes need ClickHouse 26.2 or newer.
--
-- MATERIALIZE builds the index for the rows already stored (a background mutation).

ALTER TABLE postline.delivery_log DROP INDEX IF EXISTS recipient_ngrams;

ALTER TABLE postline.delivery_log
    ADD INDEX IF NOT EXISTS recipient_text lowerUTF8(recipient) TYPE text(tokenizer = ngrams(3));

ALTER TABLE postline.delivery_log MATERIALIZE INDEX recipient_text;

ALTER TABLE postline.error_log DROP INDEX IF EXISTS recipient_ngrams;

ALTER TABLE postline.error_log
    ADD INDEX IF NOT EXISTS recipient_text lowerUTF8(recipient) TYPE text(tokenizer = ngrams(3));

ALTER TABLE postline.error_log MATERIALIZE INDEX recipient_text;
