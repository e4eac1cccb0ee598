-- The one shared check for callers' values. Every function that takes a name
-- or an id from a caller validates it with these, so every function rejects
-- the same bad input the same way: SQLSTATE 22023 (invalid_parameter_value),
-- COLUMN set to the argument, a message that names the argument and what is
-- allowed. pggit.is_valid_name is the same rule as a boolean, for CHECK
-- constraints, so no write path can bypass it.

-- +goose Up

-- A name is at most p_max_length characters, holds no control character
-- (CR, LF, tab, NUL-like C0/C1 characters: they forge email headers and log
-- lines), and is not blank unless p_allow_empty (an empty scope is the
-- operation's default scope).
-- +goose StatementBegin
CREATE FUNCTION pggit.is_valid_name(p_value text, p_max_length integer DEFAULT 200, p_allow_empty boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
    SELECT p_value IS NOT NULL
       AND length(p_value) <= p_max_length
       AND (p_allow_empty AND p_value = '' OR btrim(p_value) <> '')
       AND p_value !~ '[[:cntrl:]]'
$$;
-- +goose StatementEnd

-- Raises 22023 naming p_argument when p_value is not a valid name (see
-- is_valid_name). The value is quoted in the message, cut to 40 characters,
-- with each control character shown as '?' (the message may reach a log).
-- +goose StatementBegin
CREATE FUNCTION pggit.check_name(p_value text, p_argument text, p_max_length integer DEFAULT 200, p_allow_empty boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF NOT pggit.is_valid_name(p_value, p_max_length, p_allow_empty) THEN
        RAISE EXCEPTION '% must be a % name of at most % characters without control characters, got %',
                p_argument, CASE WHEN p_allow_empty THEN 'possibly empty' ELSE 'non-blank' END, p_max_length,
                CASE
                    WHEN p_value IS NULL THEN 'NULL'
                    WHEN length(p_value) > 40 THEN quote_literal(regexp_replace(left(p_value, 40), '[[:cntrl:]]', '?', 'g'))
                                                   || format('... (%s characters)', length(p_value))
                    ELSE quote_literal(regexp_replace(p_value, '[[:cntrl:]]', '?', 'g'))
                END
            USING ERRCODE = 'invalid_parameter_value', COLUMN = p_argument;
    END IF;
END;
$$;
-- +goose StatementEnd

-- Raises 22023 naming p_argument when p_value is NULL or not positive (ids
-- from identity columns start at 1).
-- +goose StatementBegin
CREATE FUNCTION pggit.check_id(p_value bigint, p_argument text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_value IS NULL OR p_value < 1 THEN
        RAISE EXCEPTION '% must be a positive id, got %', p_argument, coalesce(p_value::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = p_argument;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION pggit.check_id(bigint, text);
DROP FUNCTION pggit.check_name(text, text, integer, boolean);
DROP FUNCTION pggit.is_valid_name(text, integer, boolean);
