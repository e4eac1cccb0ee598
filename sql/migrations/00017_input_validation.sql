-- Placeholder: input validation lands here (issue 9).

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
