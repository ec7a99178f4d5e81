{# ANALYZE an incremental model's table on PostgreSQL when a fifth of its rows came
   since its last analyze (or it never had one), as autovacuum would if it runs (it
   may be off, as on the machine these benchmarks ran on). Analyzing after every run
   cost 0.2-0.7 s a table on millions of rows, every few seconds; never analyzing
   leaves the planner guessing about a new table. #}
{% macro analyze_when_stale() -%}
    {%- if target.type == 'postgres' and model.config.materialized == 'incremental' -%}
        do $$
        begin
            if exists (
                select 1 from pg_stat_user_tables
                where relid = '{{ this }}'::regclass
                    and (coalesce(last_analyze, last_autoanalyze) is null
                        or n_mod_since_analyze > greatest(1000, n_live_tup / 5))
            ) then
                analyze {{ this }};
            end if;
        end
        $$
    {%- endif -%}
{%- endmacro %}
