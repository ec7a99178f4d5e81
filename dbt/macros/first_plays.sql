{# The int_plays__first_of_* models' query: each key of the batch with the first play
   it offers (the smallest event_id: hashing, not sorting) and the newest loaded_at
   of the batch. A batch is the plays past what fct_plays holds (see
   plays_in_gold_through); the model's insert_new_keys strategy keeps a key that is
   already there with the play an earlier batch chose. #}
{% macro first_plays(keys) -%}
select
    {% for key in keys %}{{ key }},
    {% endfor -%}
    min(event_id) as event_id,
    max(loaded_at) as loaded_through
from {{ ref('int_plays__accepted') }}
{% if is_incremental() %}
where loaded_at > {{ plays_in_gold_through() }}
{% endif %}
group by {{ keys | join(', ') }}
{%- endmacro %}
