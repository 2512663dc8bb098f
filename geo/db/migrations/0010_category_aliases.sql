-- Other names for incident categories: a hotline export says 井盖 or 违章停车, not manhole or
-- parking. A report may name its category by code, by its Chinese name (name_zh) or by one of
-- these aliases; it is stored under the code. An alias names one category.

CREATE TABLE incident_category_alias (
    alias     text PRIMARY KEY CHECK (alias <> ''),
    category  text NOT NULL REFERENCES incident_category (code)
);

INSERT INTO incident_category_alias (alias, category) VALUES
    ('井盖', 'manhole'), ('井盖破损', 'manhole'), ('窨井盖', 'manhole'),
    ('道路', 'road_damage'), ('路面破损', 'road_damage'), ('道路坑洼', 'road_damage'),
    ('垃圾', 'garbage'), ('垃圾清运', 'garbage'), ('乱扔垃圾', 'garbage'),
    ('噪音', 'noise'), ('噪声', 'noise'), ('噪声扰民', 'noise'),
    ('漏水', 'water_leak'), ('跑冒滴漏', 'water_leak'), ('水管破裂', 'water_leak'),
    ('路灯', 'street_light'), ('路灯不亮', 'street_light'),
    ('纠纷', 'dispute'), ('邻里矛盾', 'dispute'),
    ('停车', 'parking'), ('违停', 'parking'), ('违章停车', 'parking'), ('乱停车', 'parking'),
    ('违建', 'illegal_building'), ('违法建设', 'illegal_building'), ('私搭乱建', 'illegal_building'),
    ('消防', 'fire_hazard'), ('消防通道堵塞', 'fire_hazard'), ('火灾隐患', 'fire_hazard'),
    ('其它', 'other');
